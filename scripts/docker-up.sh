#!/usr/bin/env bash
# Make sure a Docker engine runs on this machine and the local test images exist.
#
# Installs Debian's docker.io (busybox-static for the test image, debootstrap for the agent
# image's base) when absent, starts dockerd in its own session when it is not answering, and
# builds nodekeeper-test/busybox:latest with `docker import` from a busybox rootfs (no image
# registry is reachable here). Idempotent.
#
# The engine it starts keeps its pid in $NODEKEEPER_CACHE/dockerd.pid (dockerd --pidfile), which
# is how this script knows its own engine from any other dockerd on the machine.
# `docker-up.sh --restart` stops exactly that engine (SIGTERM, then waits for it to exit) and
# starts it again; it refuses, and touches nothing, when the engine running is not one it started.
# Logs: $NODEKEEPER_CACHE/dockerd.log.
set -euo pipefail

CACHE="${NODEKEEPER_CACHE:-$HOME/.cache/nodekeeper}"
IMAGE="${NODEKEEPER_TEST_IMAGE:-nodekeeper-test/busybox:latest}"
PIDFILE="$CACHE/dockerd.pid"
LOG="$CACHE/dockerd.log"
mkdir -p "$CACHE"

fail() { echo "docker-up: $*" >&2; exit 1; }

# The pid of the engine this script started, if it still runs; empty otherwise.
our_engine() {
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = dockerd ]; then
    echo "$pid"
  fi
}

# An engine started by this script before it kept a pid file: dockerd's default pid file names
# it and its output goes to our log. Adopted once, so --restart knows it too.
adopt_engine() {
  local pid
  [ -z "$(our_engine)" ] || return 0
  pid="$(cat /var/run/docker.pid 2>/dev/null || true)"
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = dockerd ] \
    && [ "$(readlink "/proc/$pid/fd/1" 2>/dev/null || true)" = "$LOG" ]; then
    echo "$pid" >"$PIDFILE"
  fi
}

if [ "${1:-}" = --restart ]; then
  adopt_engine
  pid="$(our_engine)"
  [ -n "$pid" ] || fail "--restart: no engine started by this script runs ($PIDFILE names none); the dockerd running, if any, is not ours to restart"
  kill -TERM "$pid"
  for _ in $(seq 1 600); do
    [ -e "/proc/$pid" ] || break
    sleep 0.1
  done
  [ ! -e "/proc/$pid" ] || fail "--restart: dockerd $pid still runs 60 s after SIGTERM; see $LOG"
  echo "docker-up: stopped dockerd $pid"
elif [ $# -gt 0 ]; then
  fail "usage: $0 [--restart]"
fi

apt_install() {
  if [ "$(id -u)" != 0 ]; then fail "need root to install $* (or install it yourself)"; fi
  if [ ! -f "$CACHE/.apt-updated" ]; then
    apt-get update -q >/dev/null || fail "apt-get update failed; check the network to Debian's mirror"
    touch "$CACHE/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >"$CACHE/apt.log" 2>&1 \
    || fail "apt-get install $* failed; see $CACHE/apt.log"
}

command -v dockerd >/dev/null || apt_install docker.io
[ -x /bin/busybox ] || apt_install busybox-static
# The agent image's base is a Debian rootfs made here (images/base/build.sh): no registry.
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || apt_install debootstrap

# Debian's package brings the 20.10 client in /usr/bin; a newer client elsewhere on PATH also works.
if ! docker info >/dev/null 2>&1; then
  if [ -S /var/run/docker.sock ] && pgrep -x dockerd >/dev/null; then
    :  # starting up (ours or another engine); wait below
  else
    # setsid: its own session and process group. In the caller's group, a Ctrl+C on `make run`
    # reached dockerd too (it handles SIGINT as "shut down") and stopped the shared engine.
    setsid dockerd --pidfile "$PIDFILE" >"$LOG" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || fail "dockerd did not answer within 30 s; see $LOG"
fi
adopt_engine

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  rootfs="$(mktemp -d)"
  trap 'rm -rf "$rootfs"' EXIT
  mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/etc"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
  done
  echo "root:x:0:0:root:/:/bin/sh" >"$rootfs/etc/passwd"
  tar -C "$rootfs" -c . | docker import -c 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null \
    || fail "docker import of $IMAGE failed"
fi
echo "docker-up: engine ready, test image $IMAGE"
