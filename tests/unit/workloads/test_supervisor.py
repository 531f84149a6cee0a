"""A Workload end to end on the fakes: what its owner sees in its status and in Docker.

The supervisor is driven as kopf drives it (``reconcile`` on create and on a spec change,
``monitor`` as the Workload's daemon, ``remove`` on delete) over tests/support/fakes.py: no
dockerd, no API server. Time is looptime's, so backoff and TTL seconds pass at once; a test waits
for what the fakes report (``Node.until``), never on a sleep. Where a test lets an hour pass, it
does so to show that nothing more happens. tests/component and e2e run the same Workloads on a
real engine and API server.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from nodekeeper.api import codes
from nodekeeper.api.names import AGENT_FIELD_MANAGER, LABEL_WORKLOAD_UID, RUNTIME_FIELD_MANAGER
from nodekeeper.api.refs import ObjectRef
from nodekeeper.api.times import parse_seconds
from nodekeeper.api.workload import ADMITTED, PLURAL, READY
from nodekeeper.metrics import Metrics
from nodekeeper.runtime.containers import ContainerState
from nodekeeper.runtime.errors import ContainerCreateFailed
from nodekeeper.workloads.images import ImagePolicy
from nodekeeper.workloads.runner import WorkloadRunner
from nodekeeper.workloads.status import (
    ADMISSION_CONDITIONS,
    ADMISSION_FIELDS,
    RUNTIME_CONDITIONS,
    RUNTIME_FIELDS,
    WorkloadStatus,
)
from nodekeeper.workloads.supervisor import (
    RETRY_DOCKER_SECONDS,
    RETRY_IMAGE_SECONDS,
    RetryLater,
    WorkloadSupervisor,
)
from tests.support.fakes import (
    LOOP_EPOCH,
    Changes,
    FakeEvents,
    FakeObjects,
    FakeRuntime,
    FakeStatus,
    FakeStopped,
    loop_clock,
)

pytestmark = [pytest.mark.looptime, pytest.mark.timeout(10)]

NODE = "node-a"
IMAGE = "busybox:1.36"
AN_HOUR = 3600.0


def workload(**spec: Any) -> dict[str, Any]:
    """A Workload as kopf hands it over (a plain dict works as its live body)."""
    return {
        "metadata": {
            "name": "web",
            "namespace": "apps",
            "uid": "6f1c2b9e-0d4a-4c1e-9a57-3b2f8e7d6c5a",
            "generation": 1,
        },
        "spec": {"nodeName": NODE, "image": IMAGE, **spec},
        "status": {},
    }


def respec(body: dict[str, Any], **changes: Any) -> None:
    """The owner edits the spec: the API server bumps the generation."""
    body["spec"].update(changes)
    body["metadata"]["generation"] += 1


def status(body: dict[str, Any]) -> dict[str, Any]:
    return body.get("status") or {}


def condition(body: dict[str, Any], type: str) -> dict[str, Any]:
    found = [c for c in status(body).get("conditions") or [] if c["type"] == type]
    return found[0] if found else {}


def ready(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The Ready condition as ``kubectl get`` shows it: status and reason."""
    seen = condition(body, READY)
    return seen.get("status"), seen.get("reason")


def admitted(body: dict[str, Any]) -> tuple[str | None, str | None]:
    seen = condition(body, ADMITTED)
    return seen.get("status"), seen.get("reason")


def phase(body: dict[str, Any]) -> str | None:
    return status(body).get("phase")


class Node:
    """One node's agent as far as Workloads go, on fakes: the supervisor wired as app.py wires
    it, and everything a user could look at (status in the body, Docker, the metrics)."""

    def __init__(self, *, images: tuple[str, ...] = ("*",)) -> None:
        self.changes = Changes()
        self.events = FakeEvents()
        self.runtime = FakeRuntime(
            node_name=NODE, events=self.events, changes=self.changes, clock=loop_clock
        )
        self.objects = FakeObjects(changes=self.changes)
        self.admission_status = FakeStatus(
            fields=ADMISSION_FIELDS,
            condition_types=ADMISSION_CONDITIONS,
            node_name=NODE,
            field_manager=AGENT_FIELD_MANAGER,
            changes=self.changes,
        )
        self.runtime_status = FakeStatus(
            fields=RUNTIME_FIELDS,
            condition_types=RUNTIME_CONDITIONS,
            node_name=NODE,
            field_manager=RUNTIME_FIELD_MANAGER,
            changes=self.changes,
        )
        self.bodies: list[dict[str, Any]] = []  # the Workloads monitored, for failure messages
        self.phases: dict[str, str] = {}
        self.metrics = Metrics(workload_phases=lambda: self.phases)
        self.supervisor = WorkloadSupervisor(
            node_name=NODE,
            runner=WorkloadRunner(self.runtime),
            status=WorkloadStatus(admission=self.admission_status, runtime=self.runtime_status),
            events=self.events,
            objects=self.objects,
            image_policy=ImagePolicy({"*": images}),
            metrics=self.metrics,
            phases=self.phases,
            clock=loop_clock,  # looptime moves the loop's clock; the fakes stamp the same one
        )

    async def until(self, check: Callable[[], object]) -> None:
        """Once ``check()`` holds; when it does not within an hour (loop time), what was seen."""
        try:
            await self.changes.until(check, seconds=AN_HOUR)
        except TimeoutError:
            seen = {
                "status": [status(body) for body in self.bodies],
                "containers": [(c.id[:12], c.status) for c in self.runtime.containers.values()],
                "deleted": self.objects.deleted,
            }
            raise AssertionError(f"never true after an hour; saw {seen}") from None

    @contextlib.asynccontextmanager
    async def monitoring(self, body: dict[str, Any]) -> AsyncIterator[None]:
        """The Workload exists, and its daemon runs; kopf stops it at the end."""
        self.objects.add(PLURAL, body)
        self.bodies.append(body)
        stopped = FakeStopped()
        daemon = asyncio.create_task(self.supervisor.monitor(body, stopped))
        try:
            yield
        finally:
            stopped.set()
            async with asyncio.timeout(5):
                await daemon  # a daemon that fails shows its error here
        assert not self.events.subscribers  # it let go of its Docker events

    async def reconcile(self, body: dict[str, Any], reason: str = "create") -> None:
        await self.supervisor.reconcile(body, reason)

    async def started(self, body: dict[str, Any]) -> ContainerState:
        """Reconciled, and reported Running: its container."""
        await self.reconcile(body)
        await self.until(lambda: ready(body) == ("True", codes.CONTAINER_RUNNING))
        return self.container(body)

    def containers(self, body: dict[str, Any]) -> list[ContainerState]:
        uid = body["metadata"]["uid"]
        return [c for c in self.runtime.containers.values() if c.labels[LABEL_WORKLOAD_UID] == uid]

    def container(self, body: dict[str, Any]) -> ContainerState:
        (only,) = self.containers(body)
        return only

    def starts(self, container_id: str) -> int:
        return self.runtime.started.count(container_id)

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def node() -> Node:
    return Node()


def loop_time() -> float:
    return asyncio.get_running_loop().time()


@contextlib.contextmanager
def nothing_left_behind(node: Node) -> Iterator[None]:
    yield
    assert not node.runtime.containers


# -------------------------------------------------------------------------------- phases


class TestPhases:
    async def test_a_started_container_makes_the_workload_running_and_ready(
        self, node: Node
    ) -> None:
        body = workload()
        async with node.monitoring(body):
            container = await node.started(body)

        assert container.running
        assert container.image == IMAGE
        assert status(body)["phase"] == "Running"
        assert status(body)["containerID"] == container.id
        assert status(body)["restarts"] == 0
        assert status(body)["observedGeneration"] == 1
        assert admitted(body) == ("True", codes.ADMITTED)
        assert "errorCode" not in status(body)
        assert "nextRetryAt" not in status(body)
        assert node.runtime.started == [container.id]

    async def test_the_phase_gauge_counts_the_workload_while_its_daemon_runs(
        self, node: Node
    ) -> None:
        body = workload()
        async with node.monitoring(body):
            await node.started(body)
            assert node.sample("nodekeeper_workloads", phase="Running") == 1
            assert node.sample("nodekeeper_workloads", phase="Pending") == 0

    async def test_until_its_image_is_on_the_node_the_workload_is_pending(self, node: Node) -> None:
        node.runtime.missing_images.add(IMAGE)
        body = workload()
        async with node.monitoring(body):
            with pytest.raises(RetryLater) as retry:
                await node.reconcile(body)
            assert retry.value.delay == RETRY_IMAGE_SECONDS
            assert phase(body) == "Pending"
            assert ready(body) == ("False", codes.IMAGE_NOT_FOUND)
            assert status(body)["errorCode"] == codes.IMAGE_NOT_FOUND
            assert IMAGE in status(body)["message"]
            assert node.runtime.containers == {}

            node.runtime.missing_images.clear()  # someone loads it; kopf retries
            await node.started(body)

        assert phase(body) == "Running"
        assert "errorCode" not in status(body)
        assert "message" not in status(body)

    @pytest.mark.parametrize(
        ("policy", "code", "wanted_phase", "reason"),
        [
            ("Never", 0, "Succeeded", codes.COMPLETED),
            ("OnFailure", 0, "Succeeded", codes.COMPLETED),
            ("Never", 3, "Failed", codes.CONTAINER_FAILED),
        ],
    )
    async def test_an_exit_its_restart_policy_does_not_restart_ends_the_workload(
        self, node: Node, policy: str, code: int, wanted_phase: str, reason: str
    ) -> None:
        body = workload(restartPolicy=policy)
        async with node.monitoring(body):
            container = await node.started(body)
            node.runtime.exit(container.id, code)
            await node.until(lambda: phase(body) == wanted_phase)
            await asyncio.sleep(AN_HOUR)  # nothing starts it again

        assert ready(body) == ("False", reason)
        assert status(body)["lastExitCode"] == code
        assert "nextRetryAt" not in status(body)
        assert node.starts(container.id) == 1
        assert node.objects.deleted == []  # no TTL: it stays

    async def test_looking_again_at_an_unchanged_container_writes_no_status(
        self, node: Node
    ) -> None:
        body = workload()
        async with node.monitoring(body):
            await node.started(body)
            writes, applies = node.runtime_status.writes, node.runtime_status.applies
            node.events.resync()  # dockerd restarted: every daemon looks again
            await node.until(lambda: node.runtime_status.applies > applies)

        assert node.runtime_status.writes == writes


# -------------------------------------------------------------------------------- restarts


class TestRestarts:
    @pytest.mark.parametrize(("policy", "code"), [("Always", 0), ("Always", 1), ("OnFailure", 2)])
    async def test_an_exited_container_is_restarted_after_its_backoff(
        self, node: Node, policy: str, code: int
    ) -> None:
        body = workload(restartPolicy=policy, backoff={"initialSeconds": 10})
        async with node.monitoring(body):
            container = await node.started(body)
            exited = node.runtime.exit(container.id, code)
            exited_at = loop_time()

            await node.until(lambda: ready(body) == ("False", codes.BACKING_OFF))
            assert phase(body) == "Running"
            assert status(body)["lastExitCode"] == code
            retry_at = parse_seconds(status(body)["nextRetryAt"])
            finished = parse_seconds(exited.finished_at)
            assert retry_at is not None
            assert finished is not None
            assert node.starts(container.id) == 1  # not yet

            await node.until(lambda: node.starts(container.id) == 2)
            waited = loop_time() - exited_at
            await node.until(lambda: ready(body) == ("True", codes.CONTAINER_RUNNING))

        assert 8 <= waited <= 12  # 10 s, give or take the 20 % jitter
        # nextRetryAt said when (to the second, as Kubernetes writes time).
        assert retry_at <= finished + waited < retry_at + 1
        assert status(body)["restarts"] == 1
        assert status(body)["containerID"] == container.id  # restarted, not replaced
        assert "nextRetryAt" not in status(body)
        assert node.sample("nodekeeper_workload_restarts_total") == 1

    async def test_looking_again_while_backing_off_keeps_the_restart_time(self, node: Node) -> None:
        body = workload(backoff={"initialSeconds": 10})
        async with node.monitoring(body):
            container = await node.started(body)
            node.runtime.exit(container.id, 1)
            exited_at = loop_time()
            await node.until(lambda: ready(body) == ("False", codes.BACKING_OFF))
            next_retry_at = status(body)["nextRetryAt"]

            await asyncio.sleep(5)  # 5 s into the backoff, dockerd restarts: a look
            writes, applies = node.runtime_status.writes, node.runtime_status.applies
            node.events.resync()
            await node.until(lambda: node.runtime_status.applies > applies)
            assert node.runtime_status.writes == writes  # nextRetryAt stays as it was
            assert node.starts(container.id) == 1

            await node.until(lambda: node.starts(container.id) == 2)
            waited = loop_time() - exited_at

        assert 8 <= waited <= 12  # not 5 s more
        assert parse_seconds(next_retry_at) == int(LOOP_EPOCH + waited)

    async def test_each_restart_waits_longer_until_max_retries_fails_the_workload(
        self, node: Node
    ) -> None:
        body = workload(backoff={"initialSeconds": 10, "maxSeconds": 300, "maxRetries": 2})
        waits = []
        async with node.monitoring(body):
            container = await node.started(body)
            for restarts in (1, 2):
                node.runtime.exit(container.id, 1)
                exited_at = loop_time()
                await node.until(lambda n=restarts: node.starts(container.id) == n + 1)
                waits.append(loop_time() - exited_at)
                await node.until(
                    lambda n=restarts: status(body)["restarts"] == n and ready(body)[0] == "True"
                )
            node.runtime.exit(container.id, 1)
            await node.until(lambda: phase(body) == "Failed")
            await asyncio.sleep(AN_HOUR)  # no third restart

        assert 8 <= waits[0] <= 12
        assert 16 <= waits[1] <= 24  # doubled
        assert ready(body) == ("False", codes.BACKOFF_LIMIT_EXCEEDED)
        assert "after 2 restarts" in condition(body, READY)["message"]
        assert status(body)["restarts"] == 2
        assert status(body)["lastExitCode"] == 1
        assert node.starts(container.id) == 3
        assert node.sample("nodekeeper_workload_restarts_total") == 2

    async def test_a_long_healthy_run_starts_the_restart_count_anew(self, node: Node) -> None:
        body = workload(backoff={"initialSeconds": 10, "maxRetries": 1})
        async with node.monitoring(body):
            container = await node.started(body)
            node.runtime.exit(container.id, 1)
            await node.until(lambda: status(body)["restarts"] == 1 and ready(body)[0] == "True")
            await asyncio.sleep(660)  # it runs for 11 minutes: a crash now, not a crash loop
            node.runtime.exit(container.id, 1)
            await node.until(lambda: node.starts(container.id) == 3)
            await node.until(lambda: ready(body) == ("True", codes.CONTAINER_RUNNING))

        assert status(body)["restarts"] == 1  # maxRetries 1 was not used up
        assert phase(body) == "Running"

    @pytest.mark.parametrize(
        ("policy", "backoff"), [("Never", None), ("Always", {"maxRetries": 0})]
    )
    async def test_an_oom_kill_is_named(
        self, node: Node, policy: str, backoff: dict[str, int] | None
    ) -> None:
        body = workload(restartPolicy=policy, backoff=backoff)
        async with node.monitoring(body):
            container = await node.started(body)
            node.runtime.exit(container.id, 137, oom=True)
            await node.until(lambda: phase(body) == "Failed")

        assert ready(body) == ("False", codes.OOM_KILLED)
        assert status(body)["lastExitCode"] == 137
        assert node.starts(container.id) == 1

    async def test_an_oom_kill_with_retries_left_is_restarted_and_says_why(
        self, node: Node
    ) -> None:
        body = workload(restartPolicy="Always")
        async with node.monitoring(body):
            container = await node.started(body)
            node.runtime.exit(container.id, 137, oom=True)
            await node.until(lambda: ready(body) == ("False", codes.BACKING_OFF))
            assert "OOM-killed" in condition(body, READY)["message"]
            await node.until(lambda: node.starts(container.id) == 2)


# -------------------------------------------------------------------------------- TTL


class TestTTL:
    async def test_a_failed_workload_is_deleted_after_its_ttl(self, node: Node) -> None:
        body = workload(restartPolicy="Never", ttlSecondsAfterFailed=60)
        ref = ObjectRef.of(body)
        async with node.monitoring(body):
            container = await node.started(body)
            node.runtime.exit(container.id, 1)
            failed_at = loop_time()
            await node.until(lambda: phase(body) == "Failed")
            assert node.objects.deleted == []

            await node.until(lambda: node.objects.deleted)
            waited = loop_time() - failed_at

            # The API server marks it; kopf runs the deletion handler, then stops the daemon.
            body["metadata"]["deletionTimestamp"] = "2026-03-01T08:00:00Z"
            with nothing_left_behind(node):
                await node.supervisor.remove(body)

        assert waited == pytest.approx(60)
        assert node.objects.deleted == [(PLURAL, ref)]
        assert node.runtime.removed == [container.id]
        assert node.sample("nodekeeper_garbage_collected_total", action="ttl_deleted") == 1

    async def test_a_succeeded_workload_is_kept_whatever_its_ttl(self, node: Node) -> None:
        body = workload(restartPolicy="Never", ttlSecondsAfterFailed=60)
        async with node.monitoring(body):
            container = await node.started(body)
            node.runtime.exit(container.id, 0)
            await node.until(lambda: phase(body) == "Succeeded")
            await asyncio.sleep(AN_HOUR)

        assert node.objects.deleted == []
        assert node.objects.refs(PLURAL) == [ObjectRef.of(body)]


# -------------------------------------------------------------------------------- lost containers


class TestVanishedContainer:
    async def test_a_container_removed_behind_the_agents_back_is_recreated(
        self, node: Node
    ) -> None:
        body = workload()
        async with node.monitoring(body):
            old = await node.started(body)
            node.runtime.vanish(old.id)  # docker rm -f on the node
            await node.until(lambda: status(body)["containerID"] != old.id)
            await node.until(lambda: ready(body) == ("True", codes.CONTAINER_RUNNING))

        new = node.container(body)
        assert new.running
        assert new.id != old.id
        assert status(body)["containerID"] == new.id
        assert node.runtime.removed == []  # the agent removed nothing itself
        assert node.sample("nodekeeper_garbage_collected_total", action="recreated") == 1

    async def test_a_finished_workloads_container_removed_is_left_gone(self, node: Node) -> None:
        body = workload(restartPolicy="Never")
        async with node.monitoring(body):
            container = await node.started(body)
            node.runtime.exit(container.id, 0)
            await node.until(lambda: phase(body) == "Succeeded")
            node.runtime.vanish(container.id)  # docker container prune
            await asyncio.sleep(AN_HOUR)

        assert node.runtime.containers == {}
        assert phase(body) == "Succeeded"
        assert node.sample("nodekeeper_garbage_collected_total", action="recreated") == 0


# -------------------------------------------------------------------------------- admission


class TestAdmission:
    async def test_an_invalid_spec_fails_the_workload_and_runs_nothing(self, node: Node) -> None:
        body = workload(restartPolicy="Sometimes")
        async with node.monitoring(body):
            await node.reconcile(body)
            await node.until(lambda: phase(body) == "Failed")
            await asyncio.sleep(AN_HOUR)

        assert admitted(body) == ("False", codes.INVALID_SPEC)
        assert ready(body) == ("False", codes.INVALID_SPEC)
        assert status(body)["errorCode"] == codes.INVALID_SPEC
        assert "spec.restartPolicy" in status(body)["message"]
        assert node.runtime.containers == {}
        assert node.runtime.specs == {}
        assert (
            node.sample("nodekeeper_handler_errors_total", kind="Workload", code=codes.INVALID_SPEC)
            == 1
        )

    async def test_a_fixed_spec_is_admitted_and_runs(self, node: Node) -> None:
        body = workload(restartPolicy="Sometimes")
        async with node.monitoring(body):
            await node.reconcile(body)
            await node.until(lambda: phase(body) == "Failed")
            respec(body, restartPolicy="Always")
            await node.started(body)

        assert admitted(body) == ("True", codes.ADMITTED)
        assert status(body)["observedGeneration"] == 2
        assert "errorCode" not in status(body)

    async def test_an_image_the_policy_does_not_allow_is_refused_and_its_container_removed(
        self,
    ) -> None:
        node = Node(images=("busybox:*",))
        body = workload()
        async with node.monitoring(body):
            container = await node.started(body)
            respec(body, image="miner/xmrig:latest")
            await node.reconcile(body, "update")
            await node.until(lambda: phase(body) == "Failed")
            await asyncio.sleep(AN_HOUR)

        assert admitted(body) == ("False", codes.IMAGE_NOT_ALLOWED)
        assert ready(body)[1] == codes.IMAGE_NOT_ALLOWED
        assert status(body)["errorCode"] == codes.IMAGE_NOT_ALLOWED
        assert "busybox:*" in status(body)["message"]
        assert node.runtime.removed == [container.id]
        assert node.runtime.containers == {}
        assert [spec.image for spec in node.runtime.specs.values()] == [IMAGE]


# -------------------------------------------------------------------------------- Docker


class TestDockerFailures:
    async def test_docker_unavailable_leaves_the_workload_pending_until_a_retry_runs_it(
        self, node: Node
    ) -> None:
        node.runtime.unavailable = True
        body = workload()
        async with node.monitoring(body):
            with pytest.raises(RetryLater) as retry:
                await node.reconcile(body)
            assert retry.value.delay == RETRY_DOCKER_SECONDS
            assert phase(body) == "Pending"
            assert ready(body) == ("False", codes.DOCKER_UNAVAILABLE)
            assert status(body)["errorCode"] == codes.DOCKER_UNAVAILABLE
            assert admitted(body) == ("True", codes.ADMITTED)  # the spec is fine
            assert (
                node.sample(
                    "nodekeeper_handler_errors_total",
                    kind="Workload",
                    code=codes.DOCKER_UNAVAILABLE,
                )
                == 1
            )

            node.runtime.unavailable = False  # dockerd is back; kopf retries
            await node.started(body)

        assert "errorCode" not in status(body)

    async def test_a_restart_docker_keeps_refusing_is_not_retried_in_a_tight_loop(
        self, node: Node
    ) -> None:
        body = workload(backoff={"initialSeconds": 10})
        refusals = 50
        async with node.monitoring(body):
            container = await node.started(body)
            for _ in range(refusals):
                node.runtime.fail_next("start", ContainerCreateFailed("port is already allocated"))
            node.runtime.exit(container.id, 1)
            await asyncio.sleep(60)
            attempts = refusals - node.runtime.pending_failures("start")

        assert attempts <= 10  # at most one every few seconds, not as fast as dockerd answers

    async def test_a_restart_docker_refuses_is_tried_again(self, node: Node) -> None:
        body = workload(backoff={"initialSeconds": 10})
        async with node.monitoring(body):
            container = await node.started(body)
            node.runtime.fail_next("start", ContainerCreateFailed("port is already allocated"))
            node.runtime.exit(container.id, 1)
            await node.until(lambda: node.starts(container.id) == 2)
            await node.until(lambda: ready(body) == ("True", codes.CONTAINER_RUNNING))

        assert status(body)["restarts"] == 1


# -------------------------------------------------------------------------------- spec changes


class TestSpecChange:
    async def test_a_new_spec_replaces_the_container_and_counts_restarts_from_zero(
        self, node: Node
    ) -> None:
        body = workload(backoff={"initialSeconds": 10})
        async with node.monitoring(body):
            old = await node.started(body)
            node.runtime.exit(old.id, 1)
            await node.until(lambda: status(body)["restarts"] == 1 and ready(body)[0] == "True")

            respec(body, image="busybox:1.37")
            await node.reconcile(body, "update")
            await node.until(
                lambda: status(body)["containerID"] != old.id and status(body)["restarts"] == 0
            )

        new = node.container(body)
        assert new.image == "busybox:1.37"
        assert new.running
        assert node.runtime.removed == [old.id]
        assert phase(body) == "Running"
        assert ready(body) == ("True", codes.CONTAINER_RUNNING)
        assert status(body)["observedGeneration"] == 2

    async def test_a_change_that_does_not_shape_the_container_keeps_it_running(
        self, node: Node
    ) -> None:
        body = workload()
        async with node.monitoring(body):
            container = await node.started(body)
            respec(body, backoff={"maxRetries": 10}, ttlSecondsAfterFailed=600)
            await node.reconcile(body, "update")
            await node.until(lambda: status(body)["observedGeneration"] == 2)

        assert node.container(body).id == container.id
        assert node.runtime.started == [container.id]
        assert node.runtime.removed == []


# -------------------------------------------------------------------------------- removal


class TestRemoval:
    async def test_deleting_the_workload_removes_its_container(self, node: Node) -> None:
        body = workload()
        async with node.monitoring(body):
            container = await node.started(body)
            body["metadata"]["deletionTimestamp"] = "2026-03-01T08:00:00Z"
            with nothing_left_behind(node):
                await node.supervisor.remove(body)

        assert node.runtime.removed == [container.id]
        assert node.sample("nodekeeper_workloads", phase="Running") == 0  # forgotten

    async def test_a_removal_waits_for_docker(self, node: Node) -> None:
        body = workload()
        async with node.monitoring(body):
            container = await node.started(body)
            body["metadata"]["deletionTimestamp"] = "2026-03-01T08:00:00Z"
            node.runtime.unavailable = True
            with pytest.raises(RetryLater) as retry:
                await node.supervisor.remove(body)
            assert retry.value.delay == RETRY_DOCKER_SECONDS
            assert node.container(body).running  # still there: the finalizer holds the object

            node.runtime.unavailable = False
            with nothing_left_behind(node):
                await node.supervisor.remove(body)

        assert node.runtime.removed == [container.id]
