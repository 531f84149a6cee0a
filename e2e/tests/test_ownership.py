"""Each agent gets only its node's objects from the API server, and writes to nothing else."""

import time
from pathlib import Path

from e2e.tests.conftest import Kubectl, workload
from e2e.tests.identity import AgentIdentity
from tests.support.agent import AgentProcess


def test_other_nodes_objects_never_reach_the_agent(
    kubectl: Kubectl, agent: AgentProcess, namespace: str, node: str
) -> None:
    kubectl.apply(workload("theirs", namespace, "some-other-node"))
    kubectl.apply(workload("ours", namespace, node))
    # Our own object is the barrier: once it is Ready, the agent has seen the events before it.
    kubectl.run("wait", "--for=condition=Ready", "workload/ours", "-n", namespace, "--timeout=60s")

    theirs = kubectl.get("workload", "theirs", "-n", namespace)
    assert "status" not in theirs
    assert "finalizers" not in theirs["metadata"]
    assert not any(
        key.startswith("nodekeeper.io/") for key in theirs["metadata"].get("annotations", {})
    )
    # The field selector is applied by the server: not one event of another node arrived.
    assert not agent.metric("nodekeeper_foreign_events_total", {"kind": "Workload"})
    kubectl.run("delete", "workload", "ours", "-n", namespace, "--timeout=60s")


def test_a_second_agent_for_another_node_leaves_this_nodes_objects_alone(
    kubectl: Kubectl,
    agent_identity: AgentIdentity,
    agent: AgentProcess,
    namespace: str,
    node: str,
    tmp_path: Path,
) -> None:
    other = AgentProcess.for_node(
        "e2e-other-node", agent_identity.kubeconfig("e2e-other-node"), tmp_path / "other"
    )
    try:
        other.start()
        kubectl.apply(workload("mine", namespace, node))
        kubectl.run(
            "wait", "--for=condition=Ready", "workload/mine", "-n", namespace, "--timeout=60s"
        )
        body = kubectl.get("workload", "mine", "-n", namespace, "--show-managed-fields")
        assert not other.metric("nodekeeper_foreign_events_total", {"kind": "Workload"})
        writes = other.metric(
            "nodekeeper_status_writes_total", {"kind": "Workload", "outcome": "applied"}
        )
        assert not writes
        assert body["status"]["phase"] == "Running"
    finally:
        assert other.stop() == 0
    kubectl.run("delete", "workload", "mine", "-n", namespace, "--timeout=60s")


def test_an_agent_without_workloads_or_backupruns_needs_no_docker_and_leaves_them_alone(
    kubectl: Kubectl, agent_identity: AgentIdentity, namespace: str, tmp_path: Path
) -> None:
    """The chart's workloads.enabled=false + backupRuns.enabled=false: no Docker socket at all."""
    logs_only = AgentProcess.for_node(
        "e2e-logs-only-node",
        agent_identity.kubeconfig("e2e-logs-only-node"),
        tmp_path / "logs-only",
        *("--workloads-enabled", "false", "--backup-runs-enabled", "false"),
        *("--docker-host", "unix:///nonexistent/docker.sock"),
    )
    try:
        logs_only.start()
        kubectl.apply(workload("unhandled", namespace, "e2e-logs-only-node"))
        # It stays as written (no finalizer, no status) for a while an agent with handlers
        # would have needed well under a second to add its finalizer.
        assert logs_only.metric("nodekeeper_log_containers_followed") is not None
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            body = kubectl.get("workload", "unhandled", "-n", namespace)
            assert "finalizers" not in body["metadata"]
            assert "status" not in body
            time.sleep(0.3)
    finally:
        assert logs_only.stop() == 0
    kubectl.run("delete", "workload", "unhandled", "-n", namespace, "--timeout=30s")
