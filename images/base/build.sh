#!/usr/bin/env bash
# nodekeeper-base:bookworm: a minimal Debian bookworm with python3, made locally.
#
# No image registry is reachable where CI runs, but Debian's mirror is: debootstrap builds a
# minbase rootfs with python3 (3.11, the version the agent's wheels are built for), docs and apt
# lists are dropped, and `docker import` turns the tarball into the image. The tarball is kept in
# $NODEKEEPER_CACHE/images, so a later run (or a fresh dockerd) only imports it again; the image
# itself is reused when it exists. Idempotent; needs root the first time (debootstrap).
#
#   images/base/build.sh            # prints the image name
set -euo pipefail

IMAGE="${NODEKEEPER_BASE_IMAGE:-nodekeeper-base:bookworm}"
SUITE=bookworm
MIRROR="${NODEKEEPER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${NODEKEEPER_CACHE:-$HOME/.cache/nodekeeper}"
TARBALL="$CACHE/images/nodekeeper-base-$SUITE.tar"
LOG="$CACHE/logs/base-image.log"

fail() { echo "base image: $*" >&2; exit 1; }
mkdir -p "$CACHE/images" "$CACHE/logs"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE"
  exit 0
fi

if [[ ! -f "$TARBALL" ]]; then
  command -v debootstrap >/dev/null || fail "debootstrap not found: apt-get install -y debootstrap"
  [[ "$(id -u)" == 0 ]] || fail "debootstrap needs root"
  rootfs="$(mktemp -d "$CACHE/images/rootfs.XXXXXX")"
  trap 'rm -rf "$rootfs"' EXIT
  : >"$LOG"
  debootstrap --variant=minbase --include=python3,ca-certificates "$SUITE" "$rootfs" "$MIRROR" \
    >>"$LOG" 2>&1 || fail "debootstrap $SUITE from $MIRROR failed: see $LOG"
  # What an image never uses: package caches and lists, docs, man pages, translations.
  rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/tmp/* "$rootfs"/dev/*
  find "$rootfs/usr/lib/python3"* -name __pycache__ -prune -exec rm -rf {} + 2>/dev/null || true
  # The agent image's non-root user (distroless's "nonroot" ids).
  echo "nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin" >>"$rootfs/etc/passwd"
  echo "nonroot:x:65532:" >>"$rootfs/etc/group"
  mkdir -p "$rootfs/home/nonroot" && chown 65532:65532 "$rootfs/home/nonroot"
  tar --numeric-owner -C "$rootfs" -cf "$TARBALL.tmp" . || fail "tar of the rootfs failed"
  mv -f "$TARBALL.tmp" "$TARBALL"
fi

docker import \
  -c 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'CMD ["/usr/bin/python3"]' \
  -m "debootstrap --variant=minbase $SUITE + python3" \
  "$TARBALL" "$IMAGE" >/dev/null || fail "docker import of $TARBALL failed"
echo "$IMAGE"
