"""What a status writer applies: the full set of fields it owns, and nothing when unchanged.

The write itself goes to a real API server in e2e; here the pure part is checked, plus the one
guarantee that needs no server: another node's object is refused before any request is made.
"""

import datetime
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest

from nodekeeper.kube.status import ConditionChange, ForeignObjectError, Resource, StatusWriter
from nodekeeper.metrics import Metrics

NOW = datetime.datetime(2026, 3, 1, 8, 0, 0, tzinfo=datetime.UTC)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def writer(metrics: Metrics) -> Iterator[StatusWriter]:
    # Nothing listens on this port: a request would fail as KubeUnavailable.
    api = kubernetes.client.ApiClient(kubernetes.client.Configuration(host="http://127.0.0.1:9"))
    yield StatusWriter(
        api,
        resource=Resource("Workload", "workloads"),
        field_manager="test",
        fields=("observedGeneration", "phase", "errorCode", "message"),
        condition_types=("Admitted", "Ready"),
        node_name="node-a",
        metrics=metrics,
    )
    api.close()


def body(status: dict[str, Any] | None = None, node: str = "node-a") -> dict[str, Any]:
    return {
        "metadata": {"name": "w", "namespace": "ns", "generation": 4},
        "spec": {"nodeName": node, "image": "busybox"},
        "status": status or {},
    }


def test_owned_fields_not_changed_are_carried_from_the_object(writer: StatusWriter) -> None:
    current = body({"phase": "Running", "errorCode": "X", "restarts": 3})
    status = writer.desired(current, fields={"errorCode": None}, now=NOW)
    # phase is kept (omitting it would give it up); errorCode is cleared; restarts is not ours.
    assert status == {"phase": "Running"}


def test_conditions_of_other_writers_are_left_out(writer: StatusWriter) -> None:
    current = body(
        {
            "conditions": [
                {
                    "type": "LogsFlowing",
                    "status": "True",
                    "reason": "X",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ]
        }
    )
    status = writer.desired(
        current, fields={}, conditions=[ConditionChange("Ready", "True", "Running", "")], now=NOW
    )
    assert status["conditions"] == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Running",
            "message": "",
            "lastTransitionTime": "2026-03-01T08:00:00Z",
            "observedGeneration": 4,
        }
    ]


def test_a_writer_refuses_fields_and_conditions_it_does_not_own(writer: StatusWriter) -> None:
    with pytest.raises(ValueError, match="does not own status fields"):
        writer.desired(body(), fields={"restarts": 1})
    with pytest.raises(ValueError, match="does not own condition"):
        writer.desired(body(), fields={}, conditions=[ConditionChange("Other", "True", "X", "")])


async def test_an_unchanged_status_is_not_written(writer: StatusWriter, metrics: Metrics) -> None:
    current = body(
        {
            "observedGeneration": 4,
            "phase": "Pending",
            "conditions": [
                {
                    "type": "Admitted",
                    "status": "True",
                    "reason": "Admitted",
                    "message": "ok",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                    "observedGeneration": 4,
                }
            ],
        }
    )
    written = await writer.apply(
        current,
        fields={"observedGeneration": 4, "phase": "Pending"},
        conditions=[ConditionChange("Admitted", "True", "Admitted", "ok")],
    )
    assert written is False
    samples = {"kind": "Workload", "outcome": "unchanged"}
    assert metrics.registry.get_sample_value("nodekeeper_status_writes_total", samples) == 1


async def test_another_nodes_object_is_never_written(
    writer: StatusWriter, metrics: Metrics
) -> None:
    with pytest.raises(ForeignObjectError, match="belongs to node 'node-b'"):
        await writer.apply(body(node="node-b"), fields={"phase": "Running"})
    for outcome in ("applied", "failed", "unchanged"):
        samples = {"kind": "Workload", "outcome": outcome}
        assert metrics.registry.get_sample_value("nodekeeper_status_writes_total", samples) is None
