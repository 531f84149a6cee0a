#!/usr/bin/env bash
# Make sure a Docker engine runs on this machine and the local test images exist.
#
# Installs Debian's docker.io (busybox-static for the test image, debootstrap for the agent
# image's base) when absent, starts dockerd in its own session when it is not answering, and
# builds nodekeeper-test/busybox:latest with `docker import` from a busybox rootfs (no image
# registry is reachable here). Idempotent.
# Logs: $NODEKEEPER_CACHE/dockerd.log.
set -euo pipefail

CACHE="${NODEKEEPER_CACHE:-$HOME/.cache/nodekeeper}"
IMAGE="${NODEKEEPER_TEST_IMAGE:-nodekeeper-test/busybox:latest}"
mkdir -p "$CACHE"

fail() { echo "docker-up: $*" >&2; exit 1; }

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
    :  # starting up; wait below
  else
    # setsid: its own session and process group. In the caller's group, a Ctrl+C on `make run`
    # reached dockerd too (it handles SIGINT as "shut down") and stopped the shared engine.
    setsid dockerd >"$CACHE/dockerd.log" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || fail "dockerd did not answer within 30 s; see $CACHE/dockerd.log"
fi

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
