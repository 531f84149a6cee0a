"""The e2e suite: a real kube-apiserver + etcd, the real Docker engine, the agent as a process.

The cluster is the one in KUBECONFIG when that is set (kind, or any cluster of 1.32+ whose
nodes run Docker), else `e2e/cluster.sh up` starts the local one. The agent runs as a process on
this machine for one node: E2E_NODE, else the first Node of the cluster.
"""

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent import AgentProcess

# A skip fails the run in CI (tests/support/skips.py), as under tests/.
from tests.support.skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("NODEKEEPER_CACHE", Path.home() / ".cache" / "nodekeeper"))
TEST_IMAGE = os.environ.get("NODEKEEPER_TEST_IMAGE", "nodekeeper-test/busybox:latest")


def kubectl_binary() -> str:
    cached = CACHE / "bin" / "kubectl"
    if cached.exists():
        return str(cached)
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("no kubectl: run e2e/build.sh (it installs kubectl 1.35 into the cache)")
    return found


class Kubectl:
    def __init__(self, kubeconfig: str) -> None:
        self.binary = kubectl_binary()
        self.kubeconfig = kubeconfig

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, "--kubeconfig", self.kubeconfig, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def apply(
        self, document: dict[str, Any], *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "-f", "-", input=json.dumps(document), check=check)

    def get(self, *args: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.run("get", *args, "-o", "json").stdout)
        return result


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    given = os.environ.get("KUBECONFIG")
    if given:
        return given
    result = subprocess.run(
        [str(ROOT / "e2e" / "cluster.sh"), "up"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"e2e/cluster.sh up failed: {result.stderr.strip() or result.stdout.strip()}")
    path = subprocess.run(
        [str(ROOT / "e2e" / "cluster.sh"), "kubeconfig"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return path


@pytest.fixture(scope="session")
def kubectl(kubeconfig: str) -> Kubectl:
    return Kubectl(kubeconfig)


@pytest.fixture(scope="session")
def node(kubectl: Kubectl) -> str:
    name = os.environ.get("E2E_NODE")
    if name:
        return name
    if not os.environ.get("KUBECONFIG"):
        # The local cluster: the Node cluster.sh registered for this machine, whatever else the
        # cluster holds (tests may add Nodes of their own).
        return subprocess.run(
            [str(ROOT / "e2e" / "cluster.sh"), "node"], capture_output=True, text=True, check=True
        ).stdout.strip()
    nodes = kubectl.get("nodes")["items"]
    assert len(nodes) == 1, "several Nodes: say which one the agent runs for with E2E_NODE"
    return str(nodes[0]["metadata"]["name"])


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    # --force-conflicts: a helm install of the chart (test_chart) may own them from a last run.
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    for name in ("workloads.nodekeeper.io", "backupruns.nodekeeper.io"):
        kubectl.run("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")


@pytest.fixture(scope="session")
def agent(
    kubeconfig: str, node: str, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentProcess]:
    # Garbage collection every second, so the suite sees orphans removed without waiting. On a
    # 2-core CI machine the test suite itself is real CPU pressure (PSI cpu some avg10 of 25 %
    # was seen), which the default gate rightly refuses new Workloads under; this agent's gate
    # is set past it (the gate itself is tested with a second agent).
    extra = (
        *("--gc-interval-seconds", "1", "--gc-grace-seconds", "0"),
        *("--admission-cpu-ratio", "1"),
        *("--pressure-enter-ratio", "0.95", "--pressure-exit-ratio", "0.9"),
    )
    process = AgentProcess.for_node(node, kubeconfig, tmp_path_factory.mktemp("agent"), *extra)
    try:
        process.start()
        yield process
    finally:
        code = process.stop()
        print(f"agent log: {process.log} (exit {code})")


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def workload(name: str, namespace: str, node: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "nodekeeper.io/v1alpha1",
        "kind": "Workload",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "nodeName": node,
            "image": TEST_IMAGE,
            "command": ["/bin/sh", "-c"],
            "args": ["echo started; sleep 600"],
            **spec,
        },
    }
