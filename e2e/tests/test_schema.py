"""The API server refuses bad specs with messages that name the field and what is wrong."""

from typing import Any

import pytest

from e2e.tests.conftest import Kubectl, workload


def refused(kubectl: Kubectl, document: dict[str, Any]) -> str:
    result = kubectl.apply(document, check=False)
    assert result.returncode != 0, f"the API server accepted {document}"
    return result.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"restartPolicy": "Sometimes"}, 'spec.restartPolicy: Unsupported value: "Sometimes"'),
        ({"resources": {"limits": {"memory": "lots"}}}, "spec.resources.limits.memory"),
        ({"backoff": {"maxRetries": -1}}, "spec.backoff.maxRetries: Invalid value: -1"),
        ({"image": ""}, "spec.image"),
        ({"nodeName": "Not_A_Node"}, "spec.nodeName: Invalid value"),
    ],
)
def test_invalid_workload_specs_are_refused(
    kubectl: Kubectl, crds: None, namespace: str, node: str, change: dict[str, Any], expected: str
) -> None:
    document = workload("bad", namespace, node)
    document["spec"].update(change)
    assert expected in refused(kubectl, document)


def test_a_workload_without_node_is_refused(kubectl: Kubectl, crds: None, namespace: str) -> None:
    document = workload("bad", namespace, "x")
    del document["spec"]["nodeName"]
    assert "spec.nodeName: Required value" in refused(kubectl, document)


def test_node_name_is_immutable(kubectl: Kubectl, crds: None, namespace: str) -> None:
    # Assigned to a node no agent runs on, so nothing acts on it.
    kubectl.apply(workload("pinned", namespace, "nowhere-1"))
    message = refused(kubectl, workload("pinned", namespace, "nowhere-2"))
    assert "nodeName is immutable; delete and recreate the object" in message


def test_a_backuprun_needs_exactly_one_of_image_and_result(
    kubectl: Kubectl, crds: None, namespace: str
) -> None:
    both = {
        "apiVersion": "nodekeeper.io/v1alpha1",
        "kind": "BackupRun",
        "metadata": {"name": "both", "namespace": namespace},
        "spec": {
            "nodeName": "nowhere",
            "policy": "daily",
            "taskType": "backup",
            "image": "busybox",
            "result": {"taskId": "t1", "status": "Succeeded", "durationSeconds": 3},
        },
    }
    assert "set exactly one of spec.image (run a task) or spec.result" in refused(kubectl, both)
    neither = {
        **both,
        "spec": {k: v for k, v in both["spec"].items() if k not in ("image", "result")},
    }
    assert "set exactly one of spec.image" in refused(kubectl, neither)
    bad_type = {**both, "spec": {**neither["spec"], "image": "b", "taskType": "restore"}}
    assert 'spec.taskType: Unsupported value: "restore"' in refused(kubectl, bad_type)


def test_kubectl_explain_documents_the_spec(kubectl: Kubectl, crds: None) -> None:
    explained = kubectl.run("explain", "workload.spec.restartPolicy").stdout
    assert "Always: restart whenever it exits" in explained
