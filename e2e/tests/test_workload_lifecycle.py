"""What happens to Workloads over time: OOM kills, vanished containers, orphans, TTL, lost nodes."""

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from e2e.tests.conftest import TEST_IMAGE, Kubectl, workload
from tests.support.agent import AgentProcess
from tests.support.waiting import eventually_sync


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


def ready_condition(kubectl: Kubectl, name: str, namespace: str) -> dict[str, str]:
    status = kubectl.get("workload", name, "-n", namespace).get("status", {})
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})


def test_an_oom_kill_is_reported(
    kubectl: Kubectl, agent: AgentProcess, namespace: str, node: str
) -> None:
    kubectl.apply(
        workload(
            "hungry",
            namespace,
            node,
            args=["head -c 200000000 /dev/zero | tail >/dev/null"],
            restartPolicy="Never",
            resources={"limits": {"memory": "16Mi"}},
        )
    )
    kubectl.run(
        "wait",
        "--for=jsonpath={.status.phase}=Failed",
        "workload/hungry",
        "-n",
        namespace,
        "--timeout=60s",
    )
    ready = ready_condition(kubectl, "hungry", namespace)
    assert ready["reason"] == "OOMKilled"
    assert "raise resources.limits.memory" in ready["message"]
    assert kubectl.get("workload", "hungry", "-n", namespace)["status"]["lastExitCode"] == 137


def test_a_vanished_container_is_recreated(
    kubectl: Kubectl, agent: AgentProcess, namespace: str, node: str, engine: docker.DockerClient
) -> None:
    kubectl.apply(workload("phoenix", namespace, node))
    kubectl.run(
        "wait", "--for=condition=Ready", "workload/phoenix", "-n", namespace, "--timeout=60s"
    )
    old = kubectl.get("workload", "phoenix", "-n", namespace)["status"]["containerID"]
    engine.api.remove_container(old, force=True)

    def recreated() -> str | None:
        status = kubectl.get("workload", "phoenix", "-n", namespace).get("status", {})
        new = status.get("containerID")
        ready = ready_condition(kubectl, "phoenix", namespace).get("status") == "True"
        return new if new and new != old and ready else None

    eventually_sync(recreated, what="a recreated container", seconds=60)
    assert (agent.metric("nodekeeper_garbage_collected_total", {"action": "recreated"}) or 0) >= 1


@pytest.mark.parametrize("owner", ["workload", "backuprun"])
def test_an_orphaned_container_is_removed(
    agent: AgentProcess, engine: docker.DockerClient, owner: str
) -> None:
    before = agent.metric("nodekeeper_garbage_collected_total", {"action": "orphan_removed"})
    orphan = engine.containers.run(
        TEST_IMAGE,
        ["sleep", "600"],
        detach=True,
        labels={
            "nodekeeper.io/managed": "true",
            f"nodekeeper.io/{owner}-uid": str(uuid.uuid4()),
            "nodekeeper.io/namespace": "gone",
            "nodekeeper.io/name": "gone",
        },
    )

    def removed() -> bool:
        return not engine.containers.list(all=True, filters={"id": orphan.id})

    eventually_sync(removed, what="the orphan's removal", seconds=30)
    after = agent.metric("nodekeeper_garbage_collected_total", {"action": "orphan_removed"})
    assert (after or 0) >= (before or 0) + 1


def test_another_nodes_agent_containers_are_never_collected(
    agent: AgentProcess, engine: docker.DockerClient
) -> None:
    """One engine shared by agents of two nodes (this suite does it): each collects only the
    orphans it made, told by the node label, never the other's running tasks."""
    labels = {
        "nodekeeper.io/managed": "true",
        "nodekeeper.io/backuprun-uid": str(uuid.uuid4()),  # no such run on our node
        "nodekeeper.io/namespace": "elsewhere",
        "nodekeeper.io/name": "elsewhere",
    }
    theirs = engine.containers.run(
        TEST_IMAGE,
        ["sleep", "600"],
        detach=True,
        labels={**labels, "nodekeeper.io/node": "some-other-node"},
    )
    ours = engine.containers.run(TEST_IMAGE, ["sleep", "600"], detach=True, labels=labels)
    try:

        def collected() -> bool:
            return not engine.containers.list(all=True, filters={"id": ours.id})

        eventually_sync(collected, what="our own orphan's removal (a collection ran)", seconds=30)
        time.sleep(3)  # and a few more collections (every second in this suite)
        assert engine.containers.list(all=True, filters={"id": theirs.id})
    finally:
        theirs.remove(force=True)


def test_a_failed_workload_is_deleted_after_its_ttl(
    kubectl: Kubectl, agent: AgentProcess, namespace: str, node: str, engine: docker.DockerClient
) -> None:
    kubectl.apply(
        workload(
            "brief",
            namespace,
            node,
            args=["exit 1"],
            restartPolicy="Never",
            ttlSecondsAfterFailed=2,
        )
    )
    uid = kubectl.get("workload", "brief", "-n", namespace)["metadata"]["uid"]

    def deleted() -> bool:
        result = kubectl.run("get", "workload", "brief", "-n", namespace, check=False)
        return "NotFound" in result.stderr

    eventually_sync(deleted, what="deletion after the TTL", seconds=60)
    assert not engine.containers.list(
        all=True, filters={"label": f"nodekeeper.io/workload-uid={uid}"}
    )


def test_release_node_lets_a_lost_nodes_workloads_go(
    kubectl: Kubectl, kubeconfig: str, crds: None, namespace: str
) -> None:
    document = workload("stranded", namespace, "lost-node")
    document["metadata"]["finalizers"] = ["nodekeeper.io/finalizer", "example.com/keep"]
    kubectl.apply(document)
    kubectl.run("delete", "workload", "stranded", "-n", namespace, "--wait=false")

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nodekeeper.cli",
            "release-node",
            "lost-node",
            "--kubeconfig",
            kubeconfig,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"released Workload {namespace}/stranded" in result.stdout
    assert "Left behind" in result.stdout
    remaining = kubectl.get("workload", "stranded", "-n", namespace)["metadata"]["finalizers"]
    assert remaining == ["example.com/keep"]  # only nodekeeper's own finalizer is taken away
    kubectl.run(
        "patch",
        "workload",
        "stranded",
        "-n",
        namespace,
        "--type=json",
        "-p",
        json.dumps([{"op": "remove", "path": "/metadata/finalizers"}]),
    )


def test_the_admission_gate_refuses_new_workloads_with_the_figures(
    kubectl: Kubectl, kubeconfig: str, crds: None, namespace: str, tmp_path: Path
) -> None:
    # A second agent, for a node of its own, whose memory limit any machine exceeds.
    gated = AgentProcess.for_node(
        "e2e-gated-node",
        kubeconfig,
        tmp_path / "gated",
        *("--admission-memory-ratio", "0.001", "--admission-cpu-ratio", "1"),
        *("--pressure-enter-ratio", "0.95", "--pressure-exit-ratio", "0.9"),
    )
    try:
        gated.start()
        kubectl.apply(workload("held", namespace, "e2e-gated-node"))

        def refused() -> dict[str, str] | None:
            status = kubectl.get("workload", "held", "-n", namespace).get("status", {})
            admitted = next(
                (c for c in status.get("conditions", []) if c["type"] == "Admitted"), None
            )
            return admitted if admitted and admitted["status"] == "False" else None

        admitted = eventually_sync(refused, what="an admission refusal", seconds=30)
        assert admitted["reason"] == "InsufficientResources"
        assert "memory is" in admitted["message"]
        assert "limit 0.1%" in admitted["message"]
        status = kubectl.get("workload", "held", "-n", namespace)["status"]
        assert (status["phase"], status["errorCode"]) == ("Pending", "InsufficientResources")
    finally:
        kubectl.run("delete", "workload", "held", "-n", namespace, "--wait=false", check=False)
        assert gated.stop() == 0
    # Its agent is gone, so nothing removes the finalizer: release the node, as a user would.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "nodekeeper.cli",
            "release-node",
            "e2e-gated-node",
            "--kubeconfig",
            kubeconfig,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
