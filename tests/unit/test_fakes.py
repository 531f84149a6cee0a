"""The fakes in tests/support/fakes.py stay what they stand in for.

mypy checks the package only, not the tests, so a Protocol that changes would leave its fake
behind unnoticed and the tests on it proving nothing: here every method of each Protocol must
exist on its fake with the same signature (names, kinds, defaults, annotations, async or not).
The rest checks the few behaviours of the fakes that the tests on them rely on.
"""

import inspect
from typing import Any

import pytest

from nodekeeper.api.workload import ADMITTED, READY
from nodekeeper.kube.protocols import ObjectStore, StatusApplier
from nodekeeper.kube.status import ConditionChange
from nodekeeper.runtime.containers import ContainerSpec
from nodekeeper.runtime.errors import ContainerNotFound
from nodekeeper.runtime.protocols import ContainerEventSource, ContainerRuntime
from nodekeeper.workloads.supervisor import Stopping
from tests.support.fakes import (
    FakeEvents,
    FakeObjects,
    FakeRuntime,
    FakeStatus,
    FakeStopped,
)

pytestmark = pytest.mark.timeout(10)

PAIRS = [
    (ContainerRuntime, FakeRuntime),
    (ContainerEventSource, FakeEvents),
    (StatusApplier, FakeStatus),
    (ObjectStore, FakeObjects),
    (Stopping, FakeStopped),
]


def protocol_methods(protocol: type) -> list[str]:
    own = {name for name in vars(protocol) if not name.startswith("_") or name == "__bool__"}
    return sorted(name for name in own if callable(getattr(protocol, name)))


@pytest.mark.parametrize(("protocol", "fake"), PAIRS, ids=lambda pair: pair.__name__)
def test_each_fake_has_its_protocols_methods_with_the_same_signatures(
    protocol: type, fake: type
) -> None:
    methods = protocol_methods(protocol)
    assert methods, f"no methods found on {protocol.__name__}"
    for name in methods:
        wanted, found = getattr(protocol, name), getattr(fake, name, None)
        assert found is not None, f"{fake.__name__} has no {name}()"
        assert inspect.signature(found) == inspect.signature(wanted), name
        assert inspect.iscoroutinefunction(found) == inspect.iscoroutinefunction(wanted), name


# -------------------------------------------------------------------------------- FakeRuntime


async def test_a_container_is_found_by_its_labels_and_carries_the_agents_own() -> None:
    runtime = FakeRuntime(node_name="node-a")
    state = await runtime.run(ContainerSpec(name="c", image="busybox", labels={"app": "x"}))

    assert [c.id for c in await runtime.find({"app": "x"})] == [state.id]
    assert state.running
    assert state.started_at == state.created
    assert state.labels["nodekeeper.io/node"] == "node-a"
    assert runtime.ours(state.labels)
    assert not runtime.ours({"nodekeeper.io/node": "node-b"})


async def test_removing_an_unknown_container_says_false_and_inspecting_it_fails() -> None:
    runtime = FakeRuntime()

    assert await runtime.remove("nope") is False
    with pytest.raises(ContainerNotFound):
        await runtime.inspect("nope")


async def test_subscribers_hear_of_their_containers_exit() -> None:
    events = FakeEvents(key_label="key")
    runtime = FakeRuntime(events=events)
    inbox = events.subscribe("k1")
    state = await runtime.run(ContainerSpec(name="c", image="busybox", labels={"key": "k1"}))
    runtime.exit(state.id, 3, oom=True)

    heard = [inbox.get_nowait() for _ in range(inbox.qsize())]
    assert [(e.action, e.exit_code) for e in heard] == [
        ("create", None),
        ("start", None),
        ("oom", None),
        ("die", 3),
    ]


# -------------------------------------------------------------------------------- FakeStatus


def writer(fields: tuple[str, ...], condition: str) -> FakeStatus:
    return FakeStatus(fields=fields, condition_types=(condition,), node_name="n")


def ready(status: str) -> list[ConditionChange]:
    return [ConditionChange(READY, status, "R", "")]  # type: ignore[arg-type]


async def test_two_field_managers_on_one_body_keep_each_others_fields() -> None:
    admission, runtime = writer(("errorCode",), ADMITTED), writer(("phase",), READY)
    body: dict[str, Any] = {"metadata": {"name": "w", "namespace": "ns", "uid": "u"}}
    body["spec"] = {"nodeName": "n"}

    await admission.apply(
        body, fields={"errorCode": "X"}, conditions=[ConditionChange(ADMITTED, "True", "A", "")]
    )
    await runtime.apply(body, fields={"phase": "Running"}, conditions=ready("True"))
    await admission.apply(body, fields={"errorCode": None})

    assert body["status"]["phase"] == "Running"
    assert "errorCode" not in body["status"]  # given up by its manager
    assert [c["type"] for c in body["status"]["conditions"]] == [ADMITTED, READY]


async def test_an_apply_that_changes_nothing_is_not_a_write() -> None:
    runtime = writer(("phase",), READY)
    body: dict[str, Any] = {"metadata": {"name": "w", "namespace": "ns"}, "spec": {"nodeName": "n"}}

    assert await runtime.apply(body, fields={"phase": "Running"}, conditions=ready("True"))
    assert not await runtime.apply(body, fields={"phase": "Running"}, conditions=ready("True"))
    assert (runtime.applies, runtime.writes) == (2, 1)
