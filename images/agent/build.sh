#!/usr/bin/env bash
# nodekeeper:dev (or $1): the agent image, built with no network inside the build.
#
# 1. the base image nodekeeper-base:bookworm (images/base/build.sh; cached);
# 2. wheels of nodekeeper (this checkout) and its dependencies, built here with the venv's pip
#    into $NODEKEEPER_CACHE/images/agent-context/wheels (dependency wheels are kept between runs;
#    pip fetches only what is missing, from PyPI through its ordinary client);
# 3. `docker build` of images/agent/Dockerfile with that folder as the whole context.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
IMAGE="${1:-nodekeeper:dev}"
CACHE="${NODEKEEPER_CACHE:-$HOME/.cache/nodekeeper}"
CONTEXT="$CACHE/images/agent-context"
PIP="${PIP:-$ROOT/.venv/bin/pip}"
LOG="$CACHE/logs/agent-image.log"

fail() { echo "agent image: $*" >&2; exit 1; }
mkdir -p "$CONTEXT/wheels" "$CACHE/logs"
: >"$LOG"
start=$SECONDS

base="$("$HERE/../base/build.sh")"
[[ -x "$PIP" ]] || fail "$PIP not found: run make venv"

# The project's wheel is rebuilt every time (its version does not change with the code).
rm -f "$CONTEXT"/wheels/nodekeeper-*.whl
"$PIP" wheel --disable-pip-version-check --quiet --wheel-dir "$CONTEXT/wheels" \
  --find-links "$CONTEXT/wheels" "$ROOT" pip >>"$LOG" 2>&1 \
  || fail "pip wheel failed: see $LOG"
cp "$HERE/Dockerfile" "$CONTEXT/Dockerfile"

DOCKER_BUILDKIT=0 docker build --build-arg "BASE=$base" -t "$IMAGE" "$CONTEXT" >>"$LOG" 2>&1 \
  || fail "docker build failed: see $LOG"
size="$(docker image inspect "$IMAGE" --format '{{.Size}}')"
echo "built $IMAGE ($((size / 1000000)) MB) in $((SECONDS - start)) s"
