#!/usr/bin/env bash
# A single-node Kubernetes control plane on this machine (etcd, kube-apiserver,
# kube-controller-manager; no kubelet) for e2e tests and `make run`.
#
#   e2e/cluster.sh [up]       start (builds binaries first if missing); idempotent
#   e2e/cluster.sh down       stop everything, remove etcd data (certs stay)
#   e2e/cluster.sh status     say whether it runs (exit 0 running, 3 stopped)
#   e2e/cluster.sh kubeconfig print the admin kubeconfig path
#   e2e/cluster.sh node       print the name of the Node that `up` registers for this machine
#   e2e/cluster.sh audit-log  print the kube-apiserver's audit log path (service accounts' calls)
#
# See e2e/README.md for the environment variables.
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${NODEKEEPER_CACHE:-$HOME/.cache/nodekeeper}"
BIN="$CACHE/bin"
STATE="${NODEKEEPER_CLUSTER_DIR:-$CACHE/cluster}"
PKI="$STATE/pki"
LOGS="$STATE/logs"
RUN="$STATE/run"
KUBECONFIG_PATH="$STATE/kubeconfig"
AUDIT_POLICY="$STATE/audit-policy.yaml"
AUDIT_LOG="$LOGS/audit.log"

APISERVER_PORT="${NODEKEEPER_APISERVER_PORT:-6443}"
ETCD_PORT="${NODEKEEPER_ETCD_PORT:-2379}"
ETCD_PEER_PORT="${NODEKEEPER_ETCD_PEER_PORT:-2380}"
KCM_PORT="${NODEKEEPER_KCM_PORT:-10257}"
SERVICE_CIDR="${NODEKEEPER_SERVICE_CIDR:-10.0.0.0/24}"
SERVICE_IP="${NODEKEEPER_SERVICE_IP:-10.0.0.1}" # first IP of SERVICE_CIDR (kubernetes.default)
READY_TIMEOUT="${NODEKEEPER_READY_TIMEOUT:-60}"
NODE="$(echo "${NODE_NAME:-$(hostname)}" | tr '[:upper:]' '[:lower:]')"
CONTROLLERS="${NODEKEEPER_KCM_CONTROLLERS:-garbage-collector-controller,namespace-controller,serviceaccount-token-controller,serviceaccount-controller,root-ca-certificate-publisher-controller}"
COMPONENTS=(etcd kube-apiserver kube-controller-manager) # start order; stop in reverse

say() { echo "cluster.sh: $*"; }
FAILED_MSG=""
fail() { FAILED_MSG="$*"; echo "cluster.sh: $*" >&2; exit 1; }

lock_state() {
  exec 8>"$STATE/.lock"
  flock -w 120 8 || fail "another cluster.sh has held $STATE/.lock for 120s: wait for it or stop it"
}

pidfile() { echo "$RUN/$1.pid"; }

# The binary a pid runs, as its path in $BIN. A binary that build.sh replaced (mv -f) while it
# ran reads "$BIN/NAME (deleted)": still ours, and still to be stopped.
exe_of() { # pid
  local exe
  exe="$(readlink "/proc/$1/exe" 2>/dev/null || true)"
  echo "${exe% (deleted)}"
}

# pid of a running component we started, or empty. Checks that the pid is really our binary.
component_pid() {
  local f pid
  f="$(pidfile "$1")"
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [[ "$(exe_of "$pid")" == "$BIN/$1" ]] && echo "$pid"
  return 0
}

curl_api() { # path
  curl -sS --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$(running_port)$1" 2>/dev/null
}
running_port() { if [[ -f "$RUN/apiserver.port" ]]; then cat "$RUN/apiserver.port"; else echo "$APISERVER_PORT"; fi; }

# A cluster that others may be using is torn down (and its etcd data wiped) when this says no, so
# one slow answer is not enough: on a loaded 2-core machine /readyz can miss a 3 s timeout. It is
# unhealthy when a component is gone, or when /readyz fails HEALTH_TRIES times, 1 s apart.
HEALTH_TRIES="${NODEKEEPER_HEALTH_TRIES:-5}"
is_healthy() {
  local c i
  for ((i = 1; ; i++)); do
    for c in "${COMPONENTS[@]}"; do [[ -n "$(component_pid "$c")" ]] || return 1; done
    [[ "$(curl_api /readyz)" == "ok" ]] && return 0
    ((i < HEALTH_TRIES)) || return 1
    sleep 1
  done
}

# Other processes (not in pid files) running one of our binaries against our state dir.
stray_pids() { # [component]: only that one's
  local pid exe
  for pid in $(pgrep -f -- "$STATE/" 2>/dev/null || true); do
    exe="$(exe_of "$pid")"
    case "$exe" in
      "$BIN/etcd" | "$BIN/kube-apiserver" | "$BIN/kube-controller-manager")
        [[ -z "${1:-}" || "$exe" == "$BIN/$1" ]] && echo "$pid" ;;
    esac
  done
  return 0
}

alive() { # pid: running and not a zombie
  local st
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

stop_pid() { # pid name
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 150; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  say "$2 (pid $pid) did not stop in 15s: killing"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
}

stop_and_reap() { # pid name: stop, then give the parent (this shell or init) a moment to reap
  local i
  stop_pid "$@"
  wait "$1" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do [[ -e "/proc/$1" ]] || return 0; sleep 0.1; done
}

teardown() {
  local i c pid
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    c="${COMPONENTS[$i]}"
    pid="$(component_pid "$c")"
    [[ -n "$pid" ]] && stop_and_reap "$pid" "$c"
    rm -f "$(pidfile "$c")"
    # Strays too in reverse start order: a kube-apiserver whose etcd is gone stops slowly.
    for pid in $(stray_pids "$c"); do stop_and_reap "$pid" "stray $c"; done
  done
  rm -rf "$STATE/etcd-data" "$RUN"
}

cmd_down() {
  mkdir -p "$STATE"
  lock_state
  teardown
  local left; left="$(stray_pids | tr '\n' ' ')"
  [[ -z "$left" ]] || fail "processes still running after down: $left (kill them by pid)"
  say "cluster stopped (etcd data removed; certs kept in $PKI)"
}

cmd_status() {
  local c pid any=0 all=1
  for c in "${COMPONENTS[@]}"; do
    pid="$(component_pid "$c")"
    if [[ -n "$pid" ]]; then any=1; else all=0; fi
  done
  if [[ $all == 1 ]] && is_healthy; then
    say "running on https://127.0.0.1:$(running_port) (pids: $(for c in "${COMPONENTS[@]}"; do printf '%s=%s ' "$c" "$(component_pid "$c")"; done)); KUBECONFIG=$KUBECONFIG_PATH"
    return 0
  elif [[ $any == 1 ]]; then
    say "partly running or unhealthy (logs in $LOGS); run: $0 down && $0 up"
    return 3
  fi
  say "not running"
  return 3
}

# ------------------------------------------------------------------ certificates
gen_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }

sign_cert() { # name subject ext-lines...
  local name="$1" subj="$2"; shift 2
  local ext="$PKI/$name.ext"
  printf '%s\n' "$@" >"$ext"
  gen_key "$PKI/$name.key"
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

ensure_pki() {
  mkdir -p "$PKI"
  [[ -f "$PKI/.complete" ]] && return 0
  say "generating CA, serving/client certificates and service-account key in $PKI"
  rm -f "$PKI"/*
  gen_key "$PKI/ca.key"
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=nodekeeper-e2e-ca" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$PKI/ca.crt" 2>/dev/null
  sign_cert apiserver "/CN=kube-apiserver" \
    "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
    "subjectAltName=IP:127.0.0.1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  local client=("basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=clientAuth")
  sign_cert admin "/O=system:masters/CN=nodekeeper-admin" "${client[@]}"
  sign_cert kube-controller-manager "/CN=system:kube-controller-manager" "${client[@]}"
  # service-account token signing key (RS256)
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa.key" 2>/dev/null
  chmod 600 "$PKI/sa.key"
  openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  touch "$PKI/.complete"
}

write_kubeconfig() { # file user cert-name
  local b64="base64 -w0"
  cat >"$1.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: nodekeeper-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $($b64 <"$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $($b64 <"$PKI/$3.crt")
    client-key-data: $($b64 <"$PKI/$3.key")
contexts:
- name: nodekeeper-e2e
  context:
    cluster: nodekeeper-e2e
    user: $2
current-context: nodekeeper-e2e
EOF
  chmod 600 "$1.tmp"
  mv -f "$1.tmp" "$1"
}

# ------------------------------------------------------------------ ports
port_owner() { # port -> description of the listener, empty if free
  local p="$1" out who
  if command -v ss >/dev/null; then
    out="$(ss -Hltnp "( sport = :$p )" 2>/dev/null | head -1)"
    [[ -n "$out" ]] || return 0
    who="$(sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 (pid \2)/p' <<<"$out")"
    echo "${who:-another process}"
  elif (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "another process"
  fi
  return 0
}

check_ports() {
  local spec p var owner
  for spec in "$APISERVER_PORT:NODEKEEPER_APISERVER_PORT" "$ETCD_PORT:NODEKEEPER_ETCD_PORT" \
              "$ETCD_PEER_PORT:NODEKEEPER_ETCD_PEER_PORT" "$KCM_PORT:NODEKEEPER_KCM_PORT"; do
    p="${spec%%:*}"; var="${spec#*:}"
    owner="$(port_owner "$p")"
    [[ -z "$owner" ]] || fail "port $p on 127.0.0.1 is in use by $owner: stop it or set $var to a free port"
  done
}

# ------------------------------------------------------------------ processes
start_component() { # name args...
  local name="$1"; shift
  local log="$LOGS/$name.log"
  [[ -f "$log" ]] && mv -f "$log" "$log.prev"
  # 8>&-: the component must not inherit (and so hold) the lock on $STATE/.lock
  setsid "$BIN/$name" "$@" >"$log" 2>&1 </dev/null 8>&- &
  echo $! >"$(pidfile "$name")"
}

wait_until() { # description timeout-seconds command...
  local what="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout)) c
  while ! "$@"; do
    for c in "${COMPONENTS[@]}"; do
      if [[ -f "$(pidfile "$c")" && -z "$(component_pid "$c")" ]]; then
        fail "$c exited while waiting for $what: see $LOGS/$c.log"
      fi
    done
    ((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for $what: see logs in $LOGS"
    sleep 0.2
  done
}

etcd_healthy() { [[ "$(curl -s --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null)" == *'"health":"true"'* ]]; }
apiserver_ready() { [[ "$(curl_api /readyz)" == "ok" ]]; }
kcm_healthy() { [[ "$(curl -sk --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz" 2>/dev/null)" == "ok" ]]; }
kubectl_() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }
default_sa_exists() { kubectl_ -n default get serviceaccount default >/dev/null 2>&1; }

register_node() {
  local now cpu mem_kb arch kernel os
  now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  cpu="$(nproc)"
  mem_kb="$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
  kernel="$(uname -r)"
  # shellcheck source=/dev/null
  os="$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-Linux}" || echo Linux)"
  kubectl_ apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $NODE
  labels:
    kubernetes.io/hostname: $NODE
    kubernetes.io/os: linux
    kubernetes.io/arch: $arch
EOF
  # No kubelet here: set what a kubelet would report, through the status subresource.
  kubectl_ patch node "$NODE" --subresource=status --type=strategic -p "$(cat <<EOF
{"status": {
  "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                  "message": "registered by nodekeeper e2e/cluster.sh (no kubelet)",
                  "lastHeartbeatTime": "$now", "lastTransitionTime": "$now"}],
  "capacity": {"cpu": "$cpu", "memory": "${mem_kb}Ki", "pods": "110", "ephemeral-storage": "10Gi"},
  "allocatable": {"cpu": "$cpu", "memory": "${mem_kb}Ki", "pods": "110", "ephemeral-storage": "10Gi"},
  "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "$NODE"}],
  "nodeInfo": {"architecture": "$arch", "operatingSystem": "linux", "osImage": "$os",
               "kernelVersion": "$kernel", "kubeletVersion": "$("$BIN/kube-apiserver" --version | awk '{print $2}')",
               "kubeProxyVersion": "", "containerRuntimeVersion": "",
               "machineID": "", "systemUUID": "", "bootID": ""}
}}
EOF
)" >/dev/null
  # The TaintNodesByCondition admission plugin adds a not-ready taint on create; the node
  # lifecycle controller (not run here) would remove it once Ready.
  kubectl_ taint node "$NODE" node.kubernetes.io/not-ready:NoSchedule- >/dev/null 2>&1 || true
}

# What service accounts call, at Metadata level (who, verb, resource, answer; no bodies): the e2e
# suite runs its agents with the chart's ServiceAccount and reads this to prove the chart's RBAC
# is exactly what the agent uses. kube-system's accounts (the controller-manager's controllers)
# are left out: they are many and not ours.
audit_policy() {
  cat <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    userGroups: ["system:serviceaccounts:kube-system"]
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
EOF
}

APISERVER_ARGS=(
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT"
  --etcd-servers="http://127.0.0.1:$ETCD_PORT"
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key"
  --client-ca-file="$PKI/ca.crt"
  --authorization-mode=Node,RBAC
  --service-account-issuer=https://kubernetes.default.svc.cluster.local
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key"
  --service-cluster-ip-range="$SERVICE_CIDR"
  --audit-policy-file="$AUDIT_POLICY" --audit-log-path="$AUDIT_LOG" --audit-log-format=json
  --audit-log-mode=blocking --audit-log-maxsize=200 --audit-log-maxbackup=1
  --allow-privileged=true --profiling=false --cert-dir="$STATE/apiserver-certs"
)

# A running kube-apiserver started with other flags (an older cluster.sh, another port) or
# another audit policy is not the cluster this script would start: reusing it would silently
# drop a changed flag (such as the audit log the suite reads, on a machine whose cluster
# outlived a checkout).
apiserver_current() {
  local pid want
  pid="$(component_pid kube-apiserver)"
  [[ -n "$pid" ]] || return 1
  want="$(printf '%s\n' "$BIN/kube-apiserver" "${APISERVER_ARGS[@]}")"
  [[ "$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null)" == "$want" ]] || return 1
  [[ -f "$AUDIT_POLICY" && "$(cat "$AUDIT_POLICY")" == "$(audit_policy)" ]]
}

ready_line() { echo "cluster ready: export KUBECONFIG=$KUBECONFIG_PATH"; }

STARTING=0
INTERRUPTED=""
on_exit() {
  local rc=$?
  if [[ $rc != 0 && $STARTING == 1 ]]; then
    # A second Ctrl+C must not leave the components half stopped: teardown runs to its end.
    trap '' INT TERM HUP
    if [[ -n "$INTERRUPTED" ]]; then
      echo "cluster.sh: up interrupted by SIG$INTERRUPTED" >&2
    elif [[ -z "$FAILED_MSG" ]]; then
      echo "cluster.sh: up failed (exit $rc) at line ${ERR_LINE:-?}: see logs in $LOGS" >&2
    fi
    teardown >/dev/null 2>&1 || true
    echo "cluster.sh: half-started cluster torn down" >&2
  fi
}

# Without these a signal ends the shell with $? of the last command (often 0) in the EXIT trap,
# so nothing is torn down, and the components (started with setsid) never get the signal.
on_signal() { # name number
  INTERRUPTED="$1"
  exit $((128 + $2))
}

cmd_up() {
  local t0=$SECONDS tool
  for tool in openssl curl flock setsid base64 awk; do
    command -v "$tool" >/dev/null || fail "$tool not found: apt-get install -y openssl curl util-linux coreutils gawk"
  done
  "$HERE/build.sh" | { grep -v ': cached$' || true; }
  mkdir -p "$STATE" "$LOGS" "$RUN"
  lock_state

  if is_healthy; then
    if apiserver_current; then
      say "already running on https://127.0.0.1:$(running_port) (pids in $RUN)"
      register_node
      ready_line
      return 0
    fi
    say "running with other kube-apiserver flags or audit policy: restarting it"
  fi
  local c leftovers
  leftovers="$(stray_pids)"
  for c in "${COMPONENTS[@]}"; do leftovers+="$(component_pid "$c")"; done
  if [[ -n "$leftovers" ]]; then
    say "found an unhealthy or partial cluster: stopping it first"
    teardown
    mkdir -p "$RUN"
  fi
  # Pid files of components that died without `down` (a killed session, a reboot) would read as
  # "exited while waiting" below: nothing of ours runs now, so none of them is current.
  rm -f "$RUN"/*.pid

  check_ports
  trap 'ERR_LINE=$LINENO' ERR
  trap on_exit EXIT
  trap 'on_signal INT 2' INT
  trap 'on_signal TERM 15' TERM
  trap 'on_signal HUP 1' HUP
  STARTING=1

  ensure_pki
  write_kubeconfig "$KUBECONFIG_PATH" nodekeeper-admin admin
  write_kubeconfig "$STATE/kube-controller-manager.kubeconfig" system:kube-controller-manager kube-controller-manager
  echo "$APISERVER_PORT" >"$RUN/apiserver.port"

  say "starting etcd on 127.0.0.1:$ETCD_PORT (data in $STATE/etcd-data)"
  rm -rf "$STATE/etcd-data"
  start_component etcd \
    --name=nodekeeper-e2e --data-dir="$STATE/etcd-data" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="nodekeeper-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --snapshot-count=10000 --log-level=warn
  wait_until "etcd health" "$READY_TIMEOUT" etcd_healthy

  say "starting kube-apiserver on https://127.0.0.1:$APISERVER_PORT"
  audit_policy >"$AUDIT_POLICY"
  [[ -f "$AUDIT_LOG" ]] && mv -f "$AUDIT_LOG" "$AUDIT_LOG.prev"
  start_component kube-apiserver "${APISERVER_ARGS[@]}"
  wait_until "kube-apiserver /readyz" "$READY_TIMEOUT" apiserver_ready

  say "starting kube-controller-manager (controllers: $CONTROLLERS)"
  start_component kube-controller-manager \
    --kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
    --controllers="$CONTROLLERS" --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --leader-elect=false --profiling=false --cert-dir="$STATE/kcm-certs"
  wait_until "kube-controller-manager /healthz" "$READY_TIMEOUT" kcm_healthy

  register_node
  wait_until "the default service account" "$READY_TIMEOUT" default_sa_exists
  STARTING=0
  trap - ERR EXIT INT TERM HUP
  say "started in $((SECONDS - t0))s; node $NODE registered; kubectl and helm in $BIN"
  ready_line
}

case "${1:-up}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kubeconfig) echo "$KUBECONFIG_PATH" ;;
  node) echo "$NODE" ;;
  audit-log) echo "$AUDIT_LOG" ;;
  -h | --help | help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) fail "unknown command '$1': use up, down, status, kubeconfig, node or audit-log" ;;
esac
