#!/usr/bin/env bash
# `make run`: a local control plane, the CRDs, and the agent for this machine's node in the
# foreground; the sample Workload from examples/ is applied once the agent is ready.
#
# Everything is started when missing and reused when running: dockerd (scripts/docker-up.sh),
# the control plane (e2e/cluster.sh up). Ctrl+C stops the agent; `e2e/cluster.sh down` stops the
# control plane. dockerd and the sample Workload's container stay: e2e/README.md says how to
# remove the container.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${NODEKEEPER_CACHE:-$HOME/.cache/nodekeeper}"
PORT="${NODEKEEPER_HTTP_PORT:-8080}"

scripts/docker-up.sh
e2e/cluster.sh up
KUBECONFIG="$(e2e/cluster.sh kubeconfig)"
export KUBECONFIG
KUBECTL="$CACHE/bin/kubectl"

"$KUBECTL" apply --server-side -f crds/ >/dev/null
"$KUBECTL" wait --for=condition=Established crd/workloads.nodekeeper.io crd/backupruns.nodekeeper.io \
  --timeout=60s >/dev/null
# The Node cluster.sh registered for this machine (NODE_NAME or the hostname, lowercased), not
# whichever Node a list returns first: another one may exist.
NODE="$(e2e/cluster.sh node)"
"$KUBECTL" get node "$NODE" >/dev/null 2>&1 \
  || { echo "run-local: no Node $NODE in the cluster; run e2e/cluster.sh up (it registers it)" >&2; exit 1; }

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "run-local: port $PORT is in use; set NODEKEEPER_HTTP_PORT to a free port" >&2
  exit 1
fi

(
  for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then
      sed "s/NODE_NAME/$NODE/" examples/workload.yaml | "$KUBECTL" apply -f - >/dev/null
      echo ">>> sample Workload applied. In another shell:"
      echo ">>>   export KUBECONFIG=$KUBECONFIG PATH=$CACHE/bin:\$PATH"
      echo ">>>   kubectl get wl hello -w     # Running within seconds"
      exit 0
    fi
    sleep 0.5
  done
  echo ">>> the agent did not become ready; see its log above" >&2
) &

echo ">>> agent for node $NODE; metrics on http://127.0.0.1:$PORT/metrics; Ctrl+C stops it"
exec .venv/bin/nodekeeper run --node-name "$NODE" --kubeconfig "$KUBECONFIG" \
  --http-host 127.0.0.1 --http-port "$PORT" --log-format text
