"""The agent's kopf handlers react to this node's objects and to nothing else."""

from typing import Any

import kmock

from tests.component.conftest import (
    BACKUPRUNS,
    NODE,
    WORKLOADS,
    Agent,
    backuprun_object,
    workload_object,
)
from tests.support.waiting import eventually


def status(emulator: kmock.KubernetesEmulator, resource: Any, name: str) -> dict[str, Any]:
    return dict(emulator.objects[resource, "default", name].raw.get("status", {}))


def applied(emulator: kmock.KubernetesEmulator, name: str, manager: str) -> dict[str, Any]:
    """The last status that ``manager`` applied to ``name``.

    kmock replaces the conditions list on every patch (it has no listType=map merging), so what
    each field manager sent is read from the requests; e2e checks what a real server keeps.
    """
    sent = [
        r.data["status"]
        for r in emulator
        if r.method == "PATCH"
        and r.name == name
        and r.subresource == "status"
        and r.params.get("fieldManager") == manager
    ]
    assert sent, f"{manager} applied no status to {name}"
    return dict(sent[-1])


def condition(status: dict[str, Any], type: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type)


async def test_a_valid_workload_of_this_node_runs_and_becomes_ready(
    emulator: kmock.KubernetesEmulator, agent: Agent
) -> None:
    emulator.objects[WORKLOADS, "default", "web"] = workload_object("web", NODE)
    assert await agent.workloads.next_call() == ("web", True)
    admitted = condition(applied(emulator, "web", "nodekeeper-agent"), "Admitted")
    assert (admitted["status"], admitted["reason"]) == ("True", "Admitted")
    assert admitted["observedGeneration"] == 1

    await eventually(
        lambda: status(emulator, WORKLOADS, "web").get("phase") == "Running",
        what="the Workload web Running",
        seconds=10,
    )
    result = status(emulator, WORKLOADS, "web")
    ready = condition(applied(emulator, "web", "nodekeeper-runtime"), "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "ContainerRunning")
    uid = emulator.objects[WORKLOADS, "default", "web"].raw["metadata"]["uid"]
    [container] = await agent.containers.find({"nodekeeper.io/workload-uid": uid})
    assert container.running
    assert result["containerID"] == container.id


async def test_an_invalid_workload_gets_a_reason_and_a_message_naming_the_field(
    emulator: kmock.KubernetesEmulator, agent: Agent
) -> None:
    # The API server's schema would refuse this; the emulator has no schema, so the handler must.
    emulator.objects[WORKLOADS, "default", "bad"] = workload_object(
        "bad", NODE, restartPolicy="Sometimes"
    )
    assert await agent.workloads.next_call() == ("bad", True)

    await eventually(
        lambda: status(emulator, WORKLOADS, "bad").get("phase") == "Failed",
        what="the Workload bad Failed",
        seconds=10,
    )
    result = status(emulator, WORKLOADS, "bad")
    assert result["errorCode"] == "InvalidSpec"
    admitted = condition(applied(emulator, "bad", "nodekeeper-agent"), "Admitted")
    assert (admitted["status"], admitted["reason"]) == ("False", "InvalidSpec")
    assert "spec.restartPolicy" in admitted["message"]
    errors = agent.metrics.registry.get_sample_value(
        "nodekeeper_handler_errors_total", {"kind": "Workload", "code": "InvalidSpec"}
    )
    # At least once: without resourceVersions kmock's stale watch events can re-run the handler.
    assert errors is not None
    assert errors >= 1


async def test_another_nodes_objects_are_never_written(
    emulator: kmock.KubernetesEmulator, agent: Agent
) -> None:
    # The emulator ignores field selectors, so the other node's objects reach the agent.
    emulator.objects[WORKLOADS, "default", "theirs"] = workload_object("theirs", "node-b")
    emulator.objects[BACKUPRUNS, "default", "their-run"] = backuprun_object(
        "their-run", "node-b", image="busybox"
    )
    emulator.objects[WORKLOADS, "default", "ours"] = workload_object("ours", NODE)
    assert await agent.workloads.next_call() == ("ours", True)

    def foreign(kind: str) -> float:
        value = agent.metrics.registry.get_sample_value(
            "nodekeeper_foreign_events_total", {"kind": kind}
        )
        return value or 0

    await eventually(
        lambda: foreign("Workload") >= 1 and foreign("BackupRun") >= 1,
        what="foreign events of both kinds counted",
        seconds=10,
    )
    writes = [r for r in emulator if r.method in ("PATCH", "PUT", "DELETE")]
    assert {r.name for r in writes} == {"ours"}
    # Not even kopf's diff-base annotation or finalizer went onto the other node's objects.
    theirs = emulator.objects[WORKLOADS, "default", "theirs"].raw
    assert "annotations" not in theirs["metadata"]
    assert "finalizers" not in theirs["metadata"]
    assert "status" not in theirs


async def test_a_backuprun_with_both_image_and_result_is_completed_as_invalid(
    emulator: kmock.KubernetesEmulator, agent: Agent
) -> None:
    emulator.objects[BACKUPRUNS, "default", "both"] = backuprun_object(
        "both",
        NODE,
        image="busybox",
        result={"taskId": "t", "status": "Succeeded", "durationSeconds": 2},
    )
    assert await agent.backupruns.next_call() == ("both", True)
    result = status(emulator, BACKUPRUNS, "both")
    assert result["phase"] == "Failed"
    completed = condition(result, "Completed")
    assert (completed["status"], completed["reason"]) == ("True", "InvalidSpec")


async def test_a_valid_backuprun_is_pending(
    emulator: kmock.KubernetesEmulator, agent: Agent
) -> None:
    emulator.objects[BACKUPRUNS, "default", "nightly"] = backuprun_object(
        "nightly", NODE, image="busybox"
    )
    assert await agent.backupruns.next_call() == ("nightly", True)
    assert status(emulator, BACKUPRUNS, "nightly")["phase"] == "Pending"


async def test_an_image_outside_the_policy_is_not_run(
    emulator: kmock.KubernetesEmulator, agent: Agent
) -> None:
    emulator.objects[WORKLOADS, "locked", "web"] = workload_object("web", NODE, namespace="locked")
    assert await agent.workloads.next_call() == ("web", True)
    admitted = condition(applied(emulator, "web", "nodekeeper-agent"), "Admitted")
    assert (admitted["status"], admitted["reason"]) == ("False", "ImageNotAllowed")
    assert "allowed: registry.example/*" in admitted["message"]
    uid = emulator.objects[WORKLOADS, "locked", "web"].raw["metadata"]["uid"]
    assert await agent.containers.find({"nodekeeper.io/workload-uid": uid}) == []
