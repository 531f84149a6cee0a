"""The e2e suite: a real kube-apiserver + etcd, the real Docker engine, the agent as a process.

The cluster is the one in KUBECONFIG when that is set (kind, or any cluster of 1.32+ whose
nodes run Docker), else `e2e/cluster.sh up` starts the local one. The agent runs as a process on
this machine for one node: E2E_NODE, else the first Node of the cluster.

Every agent runs as the chart's ServiceAccount with a token bound to a Pod on its node, under
the chart's RBAC and own-node policy (``agent_identity``, e2e/tests/identity.py), never as the
admin; after the suite, what the agents asked the API server is checked against what the chart
grants (e2e/tests/rights.py).
"""

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.agent import AgentProcess

# A skip fails the run in CI (tests/support/skips.py), as under tests/.
from tests.support.skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401

if TYPE_CHECKING:
    from e2e.tests.identity import AgentIdentity

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
def agent_identity(
    kubectl: Kubectl,
    crds: None,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator["AgentIdentity"]:
    """The chart's ServiceAccount, RBAC and own-node policy; ``.kubeconfig(node)`` is an agent
    pod's token on that node. Torn down after every agent has stopped: then the rights check."""
    from e2e.tests.identity import AgentIdentity

    identity = AgentIdentity(kubectl, tmp_path_factory.mktemp("identity"))
    identity.install()
    try:
        yield identity
        check_rights(identity, request.session, tmp_path_factory.getbasetemp())
    finally:
        identity.remove()


def audit_log() -> Path | None:
    """The API server's audit log: the local cluster's, or NODEKEEPER_AUDIT_LOG's for another."""
    if os.environ.get("KUBECONFIG"):
        given = os.environ.get("NODEKEEPER_AUDIT_LOG")
        return Path(given) if given else None
    path = subprocess.run(
        [str(ROOT / "e2e" / "cluster.sh"), "audit-log"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return Path(path)


def whole_suite(session: pytest.Session) -> bool:
    """Every e2e test was selected: only then must every granted rule have been used."""
    option = session.config.option
    if getattr(option, "keyword", "") or getattr(option, "markexpr", ""):
        return False
    if getattr(option, "deselect", None) or session.shouldstop:
        return False
    ran = {Path(item.path).resolve() for item in session.items}
    return ran >= {path.resolve() for path in Path(__file__).parent.glob("test_*.py")}


def check_rights(identity: "AgentIdentity", session: pytest.Session, basetemp: Path) -> None:
    from e2e.tests import rights

    problems = [
        f"the agent's log shows a refusal: {line}"
        for line in rights.refused_lines(sorted(basetemp.rglob("agent.log")))
    ]
    log = audit_log()
    if log is None:
        print("no audit log (NODEKEEPER_AUDIT_LOG unset): rights checked from agents' logs only")
    elif identity.nodes():
        rights.mark_and_wait(log, identity.kubeconfig(identity.nodes()[0]), identity.folder)
        marker = "nodekeeper-e2e-audit-marker"
        seen = [r for r in rights.audit_requests(log, identity.username) if marker not in r.uri]
        rules = rights.grants(
            identity.granting_documents(), identity.namespace, identity.service_account
        )
        problems += [
            f"refused by the API server: {line}"
            for line in rights.describe(r for r in seen if r.code in (401, 403))
        ]
        problems += [
            f"not granted by the chart: {line}"
            for line in rights.describe(
                r for r in seen if not r.access.non_resource and not rights.granted(r, rules)
            )
        ]
        used = {r.access for r in seen if r.code not in (401, 403)}
        report = basetemp / "agent-rights.txt"
        report.write_text("".join(f"{access}\n" for access in sorted(used)))
        print(f"the agents' {len(seen)} requests, {len(used)} kinds of access: {report}")
        problems += [
            f"listed in rights.NOT_REQUESTS but requested: {access}"
            for access in sorted(used & set(rights.NOT_REQUESTS))
        ]
        if whole_suite(session):
            # After a failed test, a rule may look unused because that test stopped early.
            why = " (a test failed: maybe the one using it)" if session.testsfailed else ""
            unused = {rule.access for rule in rules} - used - set(rights.NOT_REQUESTS)
            problems += [f"granted by the chart but never used{why}: {a}" for a in sorted(unused)]
        else:
            print("not the whole suite: unused grants not checked")
    if problems:
        raise AssertionError("the agent's rights:\n" + "\n".join(problems))


@pytest.fixture(scope="session")
def agent(
    kubeconfig: str,
    node: str,
    crds: None,
    agent_identity: "AgentIdentity",
    tmp_path_factory: pytest.TempPathFactory,
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
    process = AgentProcess.for_node(
        node, agent_identity.kubeconfig(node), tmp_path_factory.mktemp("agent"), *extra
    )
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
