"""Workloads on the real API server and the real Docker engine, end to end."""

import subprocess
from collections.abc import Iterator

import docker
import pytest

from e2e.tests.conftest import Kubectl, workload
from tests.support.agent import AgentProcess
from tests.support.waiting import eventually_sync


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


def containers_of(engine: docker.DockerClient, uid: str) -> list[str]:
    found = engine.containers.list(all=True, filters={"label": f"nodekeeper.io/workload-uid={uid}"})
    return [c.id for c in found]


def test_a_workload_becomes_ready_and_both_writers_conditions_survive(
    kubectl: Kubectl, agent: AgentProcess, namespace: str, node: str, engine: docker.DockerClient
) -> None:
    kubectl.apply(workload("web", namespace, node))
    kubectl.run("wait", "--for=condition=Ready", "workload/web", "-n", namespace, "--timeout=60s")
    body = kubectl.get("workload", "web", "-n", namespace, "--show-managed-fields")
    status = body["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    # Admitted comes from the handler's writer, Ready from the runtime writer: both are kept.
    assert conditions["Admitted"]["status"] == "True"
    assert conditions["Ready"]["status"] == "True"
    assert status["phase"] == "Running"
    managers = {
        entry["manager"]
        for entry in body["metadata"]["managedFields"]
        if entry.get("subresource") == "status"
    }
    assert managers == {"nodekeeper-agent", "nodekeeper-runtime"}
    assert containers_of(engine, body["metadata"]["uid"]) == [status["containerID"]]
    # No status field of another writer was lost: the handler's observedGeneration is there.
    assert status["observedGeneration"] == body["metadata"]["generation"]


def test_a_spec_change_replaces_the_container_and_delete_leaves_nothing(
    kubectl: Kubectl, agent: AgentProcess, namespace: str, node: str, engine: docker.DockerClient
) -> None:
    kubectl.apply(workload("replace", namespace, node))
    kubectl.run(
        "wait", "--for=condition=Ready", "workload/replace", "-n", namespace, "--timeout=60s"
    )
    first = kubectl.get("workload", "replace", "-n", namespace)
    uid = first["metadata"]["uid"]
    old = first["status"]["containerID"]

    kubectl.apply(workload("replace", namespace, node, args=["echo changed; sleep 600"]))

    def replaced() -> str | None:
        status = kubectl.get("workload", "replace", "-n", namespace).get("status", {})
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
        )
        new = status.get("containerID")
        return new if ready and new and new != old else None

    new = eventually_sync(replaced, what="a new container for the changed spec", seconds=30)
    assert containers_of(engine, uid) == [new]

    kubectl.run("delete", "workload", "replace", "-n", namespace, "--timeout=60s")
    assert containers_of(engine, uid) == []
    gone = kubectl.run("get", "workload", "replace", "-n", namespace, check=False)
    assert "NotFound" in gone.stderr


def test_a_crashing_workload_backs_off_and_then_fails(
    kubectl: Kubectl, agent: AgentProcess, namespace: str, node: str
) -> None:
    kubectl.apply(
        workload(
            "crash",
            namespace,
            node,
            args=["echo boom; exit 3"],
            restartPolicy="OnFailure",
            backoff={"initialSeconds": 1, "maxSeconds": 2, "maxRetries": 2},
        )
    )
    kubectl.run(
        "wait",
        "--for=jsonpath={.status.phase}=Failed",
        "workload/crash",
        "-n",
        namespace,
        "--timeout=90s",
    )
    status = kubectl.get("workload", "crash", "-n", namespace)["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "BackoffLimitExceeded")
    assert (status["restarts"], status["lastExitCode"]) == (2, 3)
    assert "exited with code 3 after 2 restarts" in ready["message"]


def test_the_sample_workload_applies_as_written(
    kubectl: Kubectl, agent: AgentProcess, node: str
) -> None:
    from e2e.tests.conftest import ROOT

    text = (ROOT / "examples" / "workload.yaml").read_text().replace("NODE_NAME", node)
    kubectl.run("apply", "-f", "-", input=text)
    try:
        kubectl.run("wait", "--for=condition=Ready", "workload/hello", "--timeout=60s")
        shown = kubectl.run("get", "wl", "hello").stdout
        assert "Running" in shown
        assert node in shown
    finally:
        kubectl.run("delete", "workload", "hello", "--timeout=60s", check=False)


def test_kubectl_wait_times_out_honestly_for_a_missing_image(
    kubectl: Kubectl, agent: AgentProcess, namespace: str, node: str
) -> None:
    kubectl.apply(workload("noimage", namespace, node, image="nodekeeper-test/absent:1"))

    def pending_reason() -> str | None:
        status = kubectl.get("workload", "noimage", "-n", namespace).get("status", {})
        return status.get("errorCode")

    assert eventually_sync(pending_reason, what="an errorCode", seconds=30) == "ImageNotFound"
    result = kubectl.run(
        "wait",
        "--for=condition=Ready",
        "workload/noimage",
        "-n",
        namespace,
        "--timeout=2s",
        check=False,
    )
    assert result.returncode != 0
    assert isinstance(result, subprocess.CompletedProcess)
