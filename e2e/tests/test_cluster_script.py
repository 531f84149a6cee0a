"""e2e/cluster.sh's own promises, checked on a second control plane beside the suite's.

Each test gets its own cluster dir (under tmp_path) and four ports free at test time; the
binaries come from the suite's NODEKEEPER_CACHE (`make binaries` built them, so `up` takes
seconds). The suite's cluster is never touched: cluster.sh finds its processes by the cluster
dir in their arguments, and the ports differ.
"""

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e.tests.conftest import CACHE, ROOT
from tests.support.net import free_ports

CLUSTER_SH = ROOT / "e2e" / "cluster.sh"
# A guard against a hang, not a timing assertion: a cached `up` takes seconds, each of its
# readiness waits is bounded by 60 s, and a loaded CI machine is slow.
HANG_GUARD = 240
pytestmark = pytest.mark.timeout(3 * HANG_GUARD)


def processes_in(path: Path) -> dict[int, str]:
    """pid -> command line of every process whose arguments or working directory are in path."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        cwd = ""
        with contextlib.suppress(OSError):
            cwd = os.readlink(proc / "cwd")
        if str(path) in args or cwd == str(path) or cwd.startswith(f"{path}/"):
            found[int(proc.name)] = args.strip()
    return found


def mounts_in(path: Path) -> list[str]:
    lines = Path("/proc/mounts").read_text().splitlines()
    return [
        line
        for line in lines
        if line.split()[1] == str(path) or line.split()[1].startswith(f"{path}/")
    ]


@dataclass(frozen=True)
class Instance:
    """One cluster.sh instance: its own cluster dir and ports, the suite's binaries."""

    state: Path
    apiserver_port: int
    env: dict[str, str]

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLUSTER_SH), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=HANG_GUARD,
            check=False,
        )

    def pids(self) -> dict[str, str]:
        run = self.state / "run"
        return {f.stem: f.read_text().strip() for f in sorted(run.glob("*.pid"))}


@pytest.fixture(scope="module")
def binaries() -> None:
    """The cached binaries (a no-op after `make binaries`); a cold build would outlast a test."""
    try:
        result = subprocess.run(
            [str(ROOT / "e2e" / "build.sh")],
            capture_output=True,
            text=True,
            timeout=HANG_GUARD,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"e2e/build.sh took over {HANG_GUARD} s: run `make binaries` first")
    if result.returncode != 0:
        pytest.fail(f"e2e/build.sh failed: {result.stderr.strip() or result.stdout.strip()}")


@pytest.fixture
def instance(binaries: None, tmp_path: Path) -> Iterator[Instance]:
    apiserver, etcd, etcd_peer, kcm = free_ports(4)
    state = tmp_path / "cluster"
    env = {
        **os.environ,
        "NODEKEEPER_CACHE": str(CACHE),
        "NODEKEEPER_CLUSTER_DIR": str(state),
        "NODEKEEPER_APISERVER_PORT": str(apiserver),
        "NODEKEEPER_ETCD_PORT": str(etcd),
        "NODEKEEPER_ETCD_PEER_PORT": str(etcd_peer),
        "NODEKEEPER_KCM_PORT": str(kcm),
    }
    instance = Instance(state=state, apiserver_port=apiserver, env=env)
    try:
        yield instance
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            instance.run("down")
        # After a hung `up` or a failed `down`: this test's own processes, by pid.
        for pid in processes_in(state):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_up_on_a_taken_port_names_the_port_and_the_variable_in_one_line(
    instance: Instance,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", instance.apiserver_port))
        taken.listen()
        result = instance.run("up")

    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {instance.apiserver_port} " in lines[0]
    assert "NODEKEEPER_APISERVER_PORT" in lines[0]
    assert processes_in(instance.state) == {}


def test_down_after_up_leaves_no_process_and_no_mount(instance: Instance) -> None:
    up = instance.run("up")
    assert up.returncode == 0, up.stderr
    assert processes_in(instance.state), "up started nothing that runs in its cluster dir"

    down = instance.run("down")

    assert down.returncode == 0, down.stderr
    assert processes_in(instance.state) == {}
    assert mounts_in(instance.state) == []


def test_up_twice_keeps_the_running_cluster_and_prints_the_kubeconfig(
    instance: Instance,
) -> None:
    first = instance.run("up")
    assert first.returncode == 0, first.stderr
    started = instance.pids()

    second = instance.run("up")

    assert second.returncode == 0, second.stderr
    assert "already running" in second.stdout
    assert f"export KUBECONFIG={instance.state / 'kubeconfig'}" in second.stdout
    assert instance.pids() == started


def test_up_restarts_a_cluster_started_with_another_audit_policy(instance: Instance) -> None:
    """A healthy cluster is reused only when it runs as this script would start it: one from an
    older cluster.sh (other flags, another audit policy) would keep the old setup forever."""
    first = instance.run("up")
    assert first.returncode == 0, first.stderr
    started = instance.pids()
    policy = instance.state / "audit-policy.yaml"
    wanted = policy.read_text()
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None}]\n")

    second = instance.run("up")

    assert second.returncode == 0, second.stderr
    assert "restarting it" in second.stdout
    assert instance.pids()["kube-apiserver"] != started["kube-apiserver"]
    assert policy.read_text() == wanted
    audit_log = instance.run("audit-log").stdout.strip()
    assert audit_log == str(instance.state / "logs" / "audit.log")
    assert "already running" in instance.run("up").stdout
