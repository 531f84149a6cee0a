"""In-memory fakes behind the runtime and kube Protocols, so domain logic runs without dockerd or
an API server (and again, unchanged, against the real ones in the component, integration and e2e
tests).

- :class:`FakeRuntime` (``ContainerRuntime``): containers in a dict, which the test makes exit,
  vanish or fail; it tells :class:`FakeEvents` (``ContainerEventSource``) what Docker would.
- :class:`FakeStatus` (``StatusApplier``): applies to the body's ``status`` what server-side
  apply with one field manager would, computed by the real ``StatusWriter.desired``.
- :class:`FakeObjects` (``ObjectStore``): objects listed per plural; deletes recorded.
- :class:`FakeStopped`: kopf's ``DaemonStopped`` as ``workloads.supervisor.Stopping`` has it.

Every fake yields to the loop once per call, as a call over a socket would, so concurrent tasks
interleave as they do in the agent. Fakes built with one :class:`Changes` wake the test that
waits in :meth:`Changes.until` whenever any of them changes: no sleeps, no polling.

tests/unit/test_fakes.py keeps each fake's signatures equal to its Protocol's.
"""

import asyncio
import collections
import copy
import dataclasses
import datetime
import hashlib
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

import kubernetes.client

from nodekeeper.api.names import LABEL_MANAGED, LABEL_NODE, LABEL_WORKLOAD_UID
from nodekeeper.api.refs import ObjectRef
from nodekeeper.kube.errors import KubeConflict, KubeError
from nodekeeper.kube.objects import ListedObject
from nodekeeper.kube.status import ConditionChange, ForeignObjectError, Resource, StatusWriter
from nodekeeper.metrics import Metrics
from nodekeeper.runtime.containers import ContainerSpec, ContainerState
from nodekeeper.runtime.errors import (
    ContainerCreateFailed,
    ContainerNotFound,
    DockerError,
    DockerUnavailable,
    ImageNotFound,
)
from nodekeeper.runtime.events import RESYNC, ContainerEvent

SIGKILL_EXIT_CODE = 137


class Changes:
    """Wakes whoever waits in :meth:`until` when a fake built with it changes."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def fire(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def until(self, check: Callable[[], object], *, seconds: float = 60.0) -> None:
        """Return once ``check()`` is true; TimeoutError after ``seconds`` (loop time)."""
        try:
            async with asyncio.timeout(seconds):
                while not check():
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiters.add(waiter)
                    try:
                        await waiter
                    finally:
                        self._waiters.discard(waiter)
        except TimeoutError:
            raise TimeoutError(f"not true after {seconds} s of loop time") from None


LOOP_EPOCH = 1_800_000_000.0  # 2027-01-15T08:00:00Z: what loop_clock() says at loop time 0


def loop_clock() -> float:
    """Wall-clock time that moves with the running loop's time (looptime's, in the unit tests),
    so the times a fake stamps agree with the waits the code under test schedules."""
    return LOOP_EPOCH + asyncio.get_running_loop().time()


def docker_time(seconds: float) -> str:
    """A Unix time as Docker writes it (RFC 3339, nanoseconds, ``Z``)."""
    whole, nanos = divmod(round(seconds * 1e9), 1_000_000_000)
    moment = datetime.datetime.fromtimestamp(whole, tz=datetime.UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


# -- runtime ------------------------------------------------------------------------------------


class FakeEvents:
    """Container events routed by a key label, as ``runtime.events.ContainerEvents`` does."""

    def __init__(self, *, key_label: str = LABEL_WORKLOAD_UID) -> None:
        self._key_label = key_label
        self.subscribers: dict[str, list[asyncio.Queue[ContainerEvent]]] = collections.defaultdict(
            list
        )

    def subscribe(self, key: str) -> asyncio.Queue[ContainerEvent]:
        queue: asyncio.Queue[ContainerEvent] = asyncio.Queue()
        self.subscribers[key].append(queue)
        return queue

    def unsubscribe(self, key: str, queue: asyncio.Queue[ContainerEvent]) -> None:
        queues = self.subscribers.get(key, [])
        if queue in queues:
            queues.remove(queue)
        if not queues:
            self.subscribers.pop(key, None)

    def emit(self, event: ContainerEvent) -> None:
        """What the engine's event stream delivers: to the subscribers of its key label."""
        key = event.labels.get(self._key_label)
        if key:
            for queue in self.subscribers.get(key, []):
                queue.put_nowait(event)

    def resync(self) -> None:
        """The stream reconnected (dockerd restarted): every subscriber looks again."""
        for queues in self.subscribers.values():
            for queue in queues:
                queue.put_nowait(ContainerEvent(action=RESYNC, container_id="", labels={}))


class FakeRuntime:
    """A Docker engine in a dict. It stamps times with ``clock``: the wall clock, as Docker
    does, or :func:`loop_clock` where the code under test waits in loop time (looptime).

    The test acts as the world outside the agent: :meth:`exit`, :meth:`vanish`, an engine that is
    down (``unavailable``), images not on the node (``missing_images``), one-off failures
    (:meth:`fail_next`). What the agent did is recorded in ``specs``, ``started`` and ``removed``.
    """

    def __init__(
        self,
        *,
        node_name: str | None = None,
        events: FakeEvents | None = None,
        changes: Changes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node_name = node_name
        self.events = events if events is not None else FakeEvents()
        self.changes = changes if changes is not None else Changes()
        self.clock = clock
        self.containers: dict[str, ContainerState] = {}  # in creation order
        self.specs: dict[str, ContainerSpec] = {}  # what run() was given, by container id
        self.started: list[str] = []  # every start, by run() or start(), in order
        self.removed: list[str] = []  # removed by the agent (not by vanish())
        self.unavailable = False  # every call fails as with a stopped dockerd
        self.missing_images: set[str] = set()
        self._failures: dict[str, list[DockerError]] = collections.defaultdict(list)
        self._ids = itertools.count(1)

    # -- the world outside the agent ----------------------------------------------------------

    def fail_next(self, method: str, error: DockerError) -> None:
        """The next call of ``method`` (``run``, ``start``, ``find``, ...) raises ``error``."""
        self._failures[method].append(error)

    def pending_failures(self, method: str) -> int:
        """How many failures :meth:`fail_next` queued for ``method`` are still to come."""
        return len(self._failures[method])

    def exit(self, container_id: str, code: int, *, oom: bool = False) -> ContainerState:
        """The container's process ends with ``code`` (killed for memory when ``oom``)."""
        state = self.containers[container_id]
        assert state.running, f"container {container_id[:12]} is {state.status}, not running"
        exited = dataclasses.replace(
            state,
            status="exited",
            exit_code=code,
            oom_killed=oom,
            finished_at=docker_time(self.clock()),
        )
        self.containers[container_id] = exited
        if oom:
            self._emit("oom", exited)
        self._emit("die", exited)
        self.changes.fire()
        return exited

    def vanish(self, container_id: str) -> None:
        """Someone else removes the container (``docker rm -f``)."""
        self._take_away(container_id)
        self.changes.fire()

    def running(self) -> list[ContainerState]:
        return [state for state in self.containers.values() if state.running]

    # -- ContainerRuntime -----------------------------------------------------------------------

    def ours(self, labels: Mapping[str, str]) -> bool:
        """Whether this node's agent made a container with these labels."""
        if self.node_name is None:
            return True
        return labels.get(LABEL_NODE, self.node_name) == self.node_name

    async def run(self, spec: ContainerSpec) -> ContainerState:
        """Create and start a container; on any failure nothing of it is left behind."""
        await self._call("run")
        if spec.image in self.missing_images:
            raise ImageNotFound(
                f"creating container {spec.name}: image not found on this node: "
                f"No such image: {spec.image}"
            )
        if any(state.name == spec.name for state in self.containers.values()):
            raise ContainerCreateFailed(
                f"creating container {spec.name}: Conflict. The container name "
                f'"/{spec.name}" is already in use'
            )
        labels = {**spec.labels, LABEL_MANAGED: "true"}
        if self.node_name:
            labels[LABEL_NODE] = self.node_name
        container_id = hashlib.sha256(f"container-{next(self._ids)}".encode()).hexdigest()
        now = docker_time(self.clock())
        state = ContainerState(
            id=container_id,
            name=spec.name,
            image=spec.image,
            labels=labels,
            status="running",
            exit_code=None,
            oom_killed=False,
            started_at=now,
            finished_at=None,
            log_path=None,
            created=now,
        )
        self.containers[container_id] = state
        self.specs[container_id] = spec
        self.started.append(container_id)
        self._emit("create", state)
        self._emit("start", state)
        self.changes.fire()
        return state

    async def start(self, container_id: str) -> None:
        await self._call("start")
        state = self._get(container_id)
        if state.running:
            return  # Docker answers 304: already started
        started = dataclasses.replace(
            state,
            status="running",
            exit_code=None,
            oom_killed=False,
            started_at=docker_time(self.clock()),
            finished_at=None,
        )
        self.containers[container_id] = started
        self.started.append(container_id)
        self._emit("start", started)
        self.changes.fire()

    async def inspect(self, container_id: str) -> ContainerState:
        await self._call("inspect")
        return self._get(container_id)

    async def find(self, labels: Mapping[str, str]) -> list[ContainerState]:
        """Containers (running or not) carrying all of ``labels``, newest first."""
        await self._call("find")
        found = [
            state
            for state in self.containers.values()
            if all(state.labels.get(key) == value for key, value in labels.items())
        ]
        return found[::-1]

    async def running_with(self, label: str) -> dict[str, Mapping[str, str]]:
        """Running containers that carry ``label``: id -> labels."""
        await self._call("running_with")
        return {
            state.id: dict(state.labels)
            for state in self.containers.values()
            if state.running and label in state.labels
        }

    async def wait(self, container_id: str, deadline_seconds: float) -> ContainerState:
        """Until the container exits; past the deadline DockerUnavailable, as docker-py's read
        timeout becomes through runtime.errors."""
        await self._call("wait")
        try:
            await self.changes.until(
                lambda: not self._get(container_id).running, seconds=deadline_seconds
            )
        except TimeoutError:
            raise DockerUnavailable(
                f"waiting for container {container_id}: cannot reach the Docker engine: "
                "Read timed out."
            ) from None
        return self._get(container_id)

    async def stop(self, container_id: str) -> None:
        await self._call("stop")
        state = self._get(container_id)
        if state.running:
            self._kill(state)
            self.changes.fire()

    async def remove(self, container_id: str) -> bool:
        """Remove a container after its log is stored; False when it was already gone."""
        await self._call("remove")
        if container_id not in self.containers:
            return False
        self._take_away(container_id)
        self.removed.append(container_id)
        self.changes.fire()
        return True

    # -- inside ---------------------------------------------------------------------------------

    async def _call(self, method: str) -> None:
        await asyncio.sleep(0)  # a real call is a round trip: other tasks run meanwhile
        if self.unavailable:
            raise DockerUnavailable(
                f"{method}: cannot reach the Docker engine: "
                "('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))"
            )
        if self._failures[method]:
            raise self._failures[method].pop(0)

    def _get(self, container_id: str) -> ContainerState:
        try:
            return self.containers[container_id]
        except KeyError:
            raise ContainerNotFound(f"No such container: {container_id}") from None

    def _kill(self, state: ContainerState) -> ContainerState:
        killed = dataclasses.replace(
            state,
            status="exited",
            exit_code=SIGKILL_EXIT_CODE,
            finished_at=docker_time(self.clock()),
        )
        self.containers[state.id] = killed
        self._emit("kill", killed)
        self._emit("die", killed)
        self._emit("stop", killed)
        return killed

    def _take_away(self, container_id: str) -> None:
        state = self._get(container_id)
        if state.running:
            state = self._kill(state)
        del self.containers[container_id]
        self._emit("destroy", state)

    def _emit(self, action: str, state: ContainerState) -> None:
        # Docker's event attributes: the container's labels, its name and image, and the exit
        # code on a die.
        attributes = {**state.labels, "name": state.name, "image": state.image}
        if action == "die":
            attributes["exitCode"] = str(state.exit_code)
        self.events.emit(
            ContainerEvent(
                action=action,
                container_id=state.id,
                labels=attributes,
                exit_code=state.exit_code if action == "die" else None,
            )
        )


# -- kube ---------------------------------------------------------------------------------------


class FakeStatus:
    """One field manager's server-side apply on the body's ``status``, in memory.

    What it applies is the real ``StatusWriter.desired`` (that part needs no API server). Applied
    to the body, the fields and condition types this manager owns are replaced by it (an owned
    field it omits is given up, so removed) and the other managers' are kept, as the API server
    does. Give the same body to two of them (admission and runtime) and they share it as the two
    real writers share a Workload. ``applies`` counts calls, ``writes`` the ones that changed
    something (``written`` holds each status sent).
    """

    def __init__(
        self,
        *,
        fields: Sequence[str],
        condition_types: Sequence[str],
        node_name: str,
        kind: str = "Workload",
        plural: str = "workloads",
        field_manager: str = "fake",
        changes: Changes | None = None,
    ) -> None:
        self._fields = tuple(fields)
        self._condition_types = frozenset(condition_types)
        self._node_name = node_name
        self._writer = StatusWriter(
            # Never used: desired() makes no request. Nothing listens on port 9 either.
            kubernetes.client.ApiClient(kubernetes.client.Configuration(host="http://127.0.0.1:9")),
            resource=Resource(kind, plural),
            field_manager=field_manager,
            fields=fields,
            condition_types=condition_types,
            node_name=node_name,
            metrics=Metrics(),
        )
        self.changes = changes if changes is not None else Changes()
        self.applies = 0
        self.writes = 0
        self.written: list[dict[str, Any]] = []
        self._failures: list[KubeError] = []

    def fail_next(self, error: KubeError) -> None:
        """The next apply raises ``error`` (and changes nothing)."""
        self._failures.append(error)

    def desired(
        self,
        body: Mapping[str, Any],
        *,
        fields: Mapping[str, Any],
        conditions: Sequence[ConditionChange] = (),
        now: datetime.datetime | None = None,
    ) -> dict[str, Any]:
        """The full status this writer owns after the changes, as it would be applied."""
        return self._writer.desired(body, fields=fields, conditions=conditions, now=now)

    async def apply(
        self,
        body: Mapping[str, Any],
        *,
        fields: Mapping[str, Any],
        conditions: Sequence[ConditionChange] = (),
    ) -> bool:
        """Apply the changes; True when a write was sent, False when nothing changed."""
        await asyncio.sleep(0)
        self.applies += 1
        try:
            if self._failures:
                raise self._failures.pop(0)
            owner = (body.get("spec") or {}).get("nodeName")
            if owner != self._node_name:
                raise ForeignObjectError(f"it belongs to node {owner!r}, not {self._node_name!r}")
            status = self.desired(body, fields=fields, conditions=conditions)
            current: dict[str, Any] = dict(body.get("status") or {})
            merged = self._merged(current, status)
            if merged == current:
                return False
            assert isinstance(body, MutableMapping), "FakeStatus writes into a dict body"
            body["status"] = merged
            self.writes += 1
            self.written.append(copy.deepcopy(status))
            return True
        finally:
            self.changes.fire()

    def _merged(self, current: Mapping[str, Any], owned: Mapping[str, Any]) -> dict[str, Any]:
        merged = {k: v for k, v in current.items() if k not in self._fields and k != "conditions"}
        merged.update((k, v) for k, v in owned.items() if k != "conditions")
        # conditions is a map keyed by type: ours replaced in place, others kept, new ones last.
        ours = {c["type"]: c for c in owned.get("conditions", [])}
        conditions = []
        for condition in current.get("conditions") or []:
            if condition.get("type") not in self._condition_types:
                conditions.append(condition)
            elif condition["type"] in ours:
                conditions.append(ours.pop(condition["type"]))
        conditions.extend(ours.values())
        if conditions:
            merged["conditions"] = conditions
        return merged


class FakeObjects:
    """This API's objects per plural, as the API server lists them; deletes are recorded."""

    def __init__(self, *, changes: Changes | None = None) -> None:
        self.changes = changes if changes is not None else Changes()
        self._objects: dict[str, list[tuple[str, ListedObject]]] = collections.defaultdict(list)
        self.deleted: list[tuple[str, ObjectRef]] = []  # every delete that removed an object
        self._failures: list[KubeError] = []

    def add(self, plural: str, body: Mapping[str, Any]) -> ObjectRef:
        """An object as the API server has it: its reference, node and finalizers."""
        ref = ObjectRef.of(body)
        finalizers = tuple(body["metadata"].get("finalizers") or ())
        node_name = str(body["spec"]["nodeName"])
        self._objects[plural].append((node_name, ListedObject(ref, finalizers)))
        return ref

    def refs(self, plural: str) -> list[ObjectRef]:
        return [listed.ref for _, listed in self._objects[plural]]

    def fail_next(self, error: KubeError) -> None:
        """The next call raises ``error``."""
        self._failures.append(error)

    async def list_on_node(self, plural: str, node_name: str) -> list[ListedObject]:
        await self._call()
        return [listed for node, listed in self._objects[plural] if node == node_name]

    async def delete(self, plural: str, ref: ObjectRef) -> bool:
        """Delete the object if it is still the same one (uid); False when it was gone."""
        await self._call()
        objects = self._objects[plural]
        for index, (_, listed) in enumerate(objects):
            if (listed.ref.namespace, listed.ref.name) != (ref.namespace, ref.name):
                continue
            if listed.ref.uid != ref.uid:
                raise KubeConflict(
                    f"Precondition failed: UID in precondition: {ref.uid}, "
                    f"UID in object meta: {listed.ref.uid}",
                    status=409,
                    reason="Conflict",
                )
            del objects[index]
            self.deleted.append((plural, ref))
            self.changes.fire()
            return True
        return False

    async def _call(self) -> None:
        await asyncio.sleep(0)
        if self._failures:
            raise self._failures.pop(0)


# -- kopf ---------------------------------------------------------------------------------------


class FakeStopped:
    """kopf's ``DaemonStopped``: false until :meth:`set`; ``wait()`` returns once set."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def wait(self) -> Awaitable[object]:
        return self._event.wait()
