#!/usr/bin/env bash
# The Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule, ...) for the e2e cluster, so
# the chart's monitoring objects can be installed against a real API server.
#
# No image registry or GitHub release download is reachable where CI runs, but the Go module
# proxy is: github.com/prometheus-operator/prometheus-operator's module zip carries
# example/prometheus-operator-crd/*.yaml. The files are copied to
# $NODEKEEPER_CACHE/prometheus-operator-crds/<version>/ (outside the repo) once; later runs
# print the folder at once. Prints the folder on stdout; one line on stderr on failure.
#
#   e2e/prometheus-operator-crds.sh            # then: kubectl apply --server-side -f "$(...)"
set -euo pipefail

VERSION="${NODEKEEPER_PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
CACHE="${NODEKEEPER_CACHE:-$HOME/.cache/nodekeeper}"
OUT="$CACHE/prometheus-operator-crds/$VERSION"
MODULE=github.com/prometheus-operator/prometheus-operator

fail() { echo "prometheus-operator-crds.sh: $*" >&2; exit 1; }

if [[ -f "$OUT/.complete" ]]; then
  echo "$OUT"
  exit 0
fi
command -v go >/dev/null || fail "go not found: the CRDs come from the Go module proxy (apt-get install golang-go)"
mkdir -p "$CACHE/logs" "$CACHE/go/mod"
log="$CACHE/logs/prometheus-operator-crds.log"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# A throwaway module folder: `go mod download` needs no go.mod, but must not run inside ours.
dir="$(cd "$work" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOMODCACHE="$CACHE/go/mod" \
  go mod download -json "$MODULE@$VERSION" 2>>"$log" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')" \
  || fail "go mod download $MODULE@$VERSION failed: see $log; check Go proxy reachability"
[[ -n "$dir" && -d "$dir/example/prometheus-operator-crd" ]] \
  || fail "no example/prometheus-operator-crd in $MODULE@$VERSION ($dir): the module layout changed; pick another NODEKEEPER_PROMETHEUS_OPERATOR_VERSION"
rm -rf "$OUT"
mkdir -p "$OUT"
cp "$dir"/example/prometheus-operator-crd/*.yaml "$OUT/"
chmod 0644 "$OUT"/*.yaml
touch "$OUT/.complete"
echo "$OUT"
