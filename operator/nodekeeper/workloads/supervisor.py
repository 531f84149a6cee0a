"""The per-Workload loop: admit the spec, run its container, keep status true, clean up.

Two entry points share a Workload, and kopf calls both (handlers/workloads.py is the glue):

- :meth:`WorkloadSupervisor.reconcile` (create / update of the spec / resume) admits the spec
  (validation, the image policy, the node-pressure gate) and makes sure its container exists;
- :meth:`WorkloadSupervisor.monitor` (one per Workload, for as long as it exists) reports what
  its container does and restarts it with backoff as ``restartPolicy`` says, or deletes a Failed
  Workload after ``ttlSecondsAfterFailed``.

They talk through this object, not through the Workload's body: kopf handles one event of an
object at a time, so the monitor's body lags behind what reconcile just wrote. Reconcile records
its verdict here, holds the Workload's lock while it touches the container, and nudges the
monitor's inbox when it is done (``respec`` when it replaced the container, so the restart count
starts anew). Docker's events reach the same inbox.

Nothing here imports kopf: "try again later" is :class:`RetryLater`, status-write failures are
:mod:`nodekeeper.kube.errors`, and the handlers turn both into kopf's retry semantics.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from pydantic import ValidationError

from nodekeeper.api import codes
from nodekeeper.api.refs import ObjectRef
from nodekeeper.api.validation import explain
from nodekeeper.api.workload import ADMITTED, KIND, PLURAL, WorkloadSpec
from nodekeeper.kube.errors import KubeError
from nodekeeper.kube.protocols import ObjectStore
from nodekeeper.metrics import Metrics
from nodekeeper.pressure.admission import AdmissionGate
from nodekeeper.runtime.errors import DockerError, DockerUnavailable
from nodekeeper.runtime.events import RESYNC, ContainerEvent
from nodekeeper.runtime.protocols import ContainerEventSource
from nodekeeper.workloads.images import ImagePolicy
from nodekeeper.workloads.policy import Observation, exited_at, observe
from nodekeeper.workloads.runner import WorkloadRunner
from nodekeeper.workloads.status import WorkloadStatus

logger = logging.getLogger(__name__)

RESPEC = "respec"  # reconcile replaced the container: the monitor starts counting restarts anew
RETRY_DOCKER_SECONDS = 10.0
RETRY_IMAGE_SECONDS = 30.0
RETRY_PRESSURE_SECONDS = 30.0  # a refused Workload is looked at again until pressure clears


class RetryLater(Exception):
    """Not now: look at this Workload again in ``delay`` seconds (kopf's TemporaryError)."""

    def __init__(self, message: str, *, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


class Stopping(Protocol):
    """kopf's DaemonStopped as the monitor uses it: true once the daemon must end."""

    def __bool__(self) -> bool: ...

    def wait(self) -> Awaitable[object]: ...


def label(body: Mapping[str, Any]) -> str:
    return str(ObjectRef.of(body))


def _deleting(body: Mapping[str, Any]) -> bool:
    return bool(body["metadata"].get("deletionTimestamp"))


class WorkloadSupervisor:
    def __init__(
        self,
        *,
        node_name: str,
        runner: WorkloadRunner,
        status: WorkloadStatus,
        events: ContainerEventSource,
        objects: ObjectStore,
        image_policy: ImagePolicy,
        metrics: Metrics,
        admission: AdmissionGate | None = None,  # the node-pressure gate; None admits regardless
        phases: dict[str, str] | None = None,  # filled here, read by the metrics
        clock: Callable[[], float] = time.time,  # Unix time, as Docker stamps its containers
    ) -> None:
        self._clock = clock
        self.node_name = node_name
        self.runner = runner
        self.status = status
        self._events = events
        self._objects = objects
        self._image_policy = image_policy
        self._metrics = metrics
        self._admission = admission
        # Workload uid -> phase as last reported, for the nodekeeper_workloads gauge.
        self.phases: dict[str, str] = {} if phases is None else phases
        # Workload uid -> reconcile's last admission verdict; the monitor reads it from here.
        self._verdicts: dict[str, bool] = {}
        # Workload uid -> the lock reconcile and the monitor hold while they touch its container.
        self._locks: dict[str, asyncio.Lock] = {}
        # Workload uid -> the monitor's inbox: Docker events and reconcile's nudges.
        self._inboxes: dict[str, asyncio.Queue[ContainerEvent]] = {}

    def _lock_for(self, uid: str) -> asyncio.Lock:
        return self._locks.setdefault(uid, asyncio.Lock())

    def _nudge(self, uid: str, action: str) -> None:
        inbox = self._inboxes.get(uid)
        if inbox is not None:
            inbox.put_nowait(ContainerEvent(action=action, container_id="", labels={}))

    def forget(self, uid: str) -> None:
        for table in (self.phases, self._verdicts, self._locks):
            table.pop(uid, None)

    # -- reconcile ------------------------------------------------------------------------

    async def reconcile(self, body: Mapping[str, Any], reason: str) -> None:
        """Admit the spec, then make sure its container exists. Raises RetryLater."""
        uid = ObjectRef.of(body).uid
        nudge = RESYNC
        try:
            with self._metrics.reconcile_duration.labels(kind=KIND).time():
                async with self._lock_for(uid):
                    nudge = await self._reconcile(body, reason)
        finally:
            # Always: the monitor's body lags behind these writes; the nudge makes it look again.
            self._nudge(uid, nudge)

    async def _needs_new_container(self, ref: ObjectRef) -> bool:
        """The gate holds back new containers only: a running Workload is never stopped by it."""
        try:
            return await self.runner.current(ref) is None
        except DockerError:
            return True

    async def _refuse(
        self, body: Mapping[str, Any], *, code: str, message: str, phase: str
    ) -> bool:
        """Record a refusal: Admitted=False with ``code``, and the runtime side in ``phase``.

        Returns True when the admission status changed (a refusal worth logging).
        """
        self._verdicts[ObjectRef.of(body).uid] = False
        self._metrics.handler_errors.labels(kind=KIND, code=code).inc()
        changed = await self.status.admission(
            body,
            admitted=False,
            reason=code,
            message=message,
            error_code=code,
            error_message=message,
        )
        refused = Observation(phase, False, code, message, None, None)
        await self.status.runtime(body, refused, restarts=0)
        return changed

    async def _reconcile(self, body: Mapping[str, Any], reason: str) -> str:
        """Returns the nudge for the monitor: RESPEC when a new container replaced the old one."""
        ref = ObjectRef.of(body)
        try:
            spec = WorkloadSpec.model_validate(dict(body["spec"]))
        except ValidationError as e:
            message = explain(e)
            refused = await self._refuse(
                body, code=codes.INVALID_SPEC, message=message, phase="Failed"
            )
            if refused:
                logger.warning("workload refused", extra={"object": label(body), "error": message})
            return RESYNC

        if not self._image_policy.allowed(ref.namespace, spec.image):
            message = (
                f"image {spec.image!r} is not allowed in namespace {ref.namespace} on this node "
                f"(allowed: {self._image_policy.describe(ref.namespace)}); use an allowed image"
            )
            await self._refuse(body, code=codes.IMAGE_NOT_ALLOWED, message=message, phase="Failed")
            await self.runner.remove_all(ref)  # a container of an earlier, allowed spec goes too
            return RESYNC

        if self._admission is not None and await self._needs_new_container(ref):
            refusal = self._admission.check()
            if refusal is not None:
                await self._refuse(
                    body, code=refusal.code, message=refusal.message, phase="Pending"
                )
                raise RetryLater(refusal.message, delay=RETRY_PRESSURE_SECONDS)

        self._verdicts[ref.uid] = True
        accepted = f"accepted by node {self.node_name}"
        try:
            state, created = await self.runner.ensure(ref, spec)
        except DockerError as e:
            self._metrics.handler_errors.labels(kind=KIND, code=e.code).inc()
            await self.status.admission(
                body,
                admitted=True,
                reason=codes.ADMITTED,
                message=accepted,
                error_code=e.code,
                error_message=str(e),
            )
            waiting = Observation("Pending", False, e.code, str(e), None, None)
            await self.status.runtime(body, waiting, restarts=0)
            delay = (
                RETRY_DOCKER_SECONDS if isinstance(e, DockerUnavailable) else RETRY_IMAGE_SECONDS
            )
            raise RetryLater(str(e), delay=delay) from e

        await self.status.admission(body, admitted=True, reason=codes.ADMITTED, message=accepted)
        if created:
            logger.info(
                "workload container started",
                extra={"object": label(body), "container": state.id[:12], "reason": reason},
            )
            return RESPEC
        return RESYNC

    # -- remove ---------------------------------------------------------------------------

    async def remove(self, body: Mapping[str, Any]) -> None:
        """The Workload is being deleted: its container goes first. Raises RetryLater."""
        ref = ObjectRef.of(body)
        try:
            async with self._lock_for(ref.uid):  # a monitor look in flight cannot recreate it
                removed = await self.runner.remove_all(ref)
        except DockerUnavailable as e:
            raise RetryLater(str(e), delay=RETRY_DOCKER_SECONDS) from e
        if removed:
            logger.info("workload container removed", extra={"object": label(body)})

    # -- monitor --------------------------------------------------------------------------

    async def monitor(self, body: Mapping[str, Any], stopped: Stopping) -> None:
        """Report what the container does; restart it as the policy says; until ``stopped``.

        ``body`` is kopf's live view of the Workload: it changes as events arrive.
        """
        ref = ObjectRef.of(body)
        inbox = self._events.subscribe(ref.uid)
        self._inboxes[ref.uid] = inbox
        restarts = int((body.get("status") or {}).get("restarts") or 0)
        stop = asyncio.ensure_future(stopped.wait())
        try:
            while not stopped:
                if _deleting(body):
                    await stop  # going away: remove() takes the container
                    break
                observation, wake_in = await self._look(body, ref, restarts, stopped)
                if observation is not None and observation.restarts is not None:
                    restarts = observation.restarts  # a long healthy run started the count anew
                event = await _next_event(inbox, stop, wake_in)
                if event is not None:
                    if event.action == RESPEC:
                        restarts = 0
                    continue
                if observation is None or stopped:
                    continue
                if observation.restart_in is not None:
                    if await self._restart(body, observation):
                        restarts += 1
                    else:  # Docker refused it: try again later, not as fast as dockerd answers
                        event = await _next_event(inbox, stop, RETRY_DOCKER_SECONDS)
                        if event is not None and event.action == RESPEC:
                            restarts = 0
                elif observation.phase == "Failed":
                    if await self._expire(body, ref):
                        await stop  # deleted: kopf stops the monitor when the deletion arrives
                        break
                    await _next_event(inbox, stop, RETRY_DOCKER_SECONDS)  # not in a tight loop
        finally:
            stop.cancel()
            self._events.unsubscribe(ref.uid, inbox)
            if self._inboxes.get(ref.uid) is inbox:
                del self._inboxes[ref.uid]
            if _deleting(body):
                self.forget(ref.uid)

    async def _look(
        self, body: Mapping[str, Any], ref: ObjectRef, restarts: int, stopped: Stopping
    ) -> tuple[Observation | None, float | None]:
        """Observe the container and report it; also say when to wake up without an event."""
        try:
            spec = WorkloadSpec.model_validate(dict(body["spec"]))
        except ValidationError:
            return None, None  # reconcile reports it; wait for a fixed spec
        if not self._admitted(body, ref):
            return None, None
        async with self._lock_for(ref.uid):
            if stopped or _deleting(body):
                return None, None
            try:
                state = await self.runner.current(ref)
                if state is None and _lost_container(body):
                    # It ran, and now it is gone (removed behind our back): make it again.
                    state, _ = await self.runner.ensure(ref, spec)
                    self._metrics.garbage_collected.labels(action="recreated").inc()
                    logger.warning(
                        "workload container vanished; recreated", extra={"object": label(body)}
                    )
            except DockerError as e:
                failed = Observation("Pending", False, e.code, str(e), None, None)
                await self.status.runtime(body, failed, restarts=restarts)
                return None, RETRY_DOCKER_SECONDS
            if state is None:
                # Not created yet: reconcile is about to, and its nudge brings the first real
                # look. Reporting "no container" first would cost every new Workload a write.
                self.phases[ref.uid] = "Pending"
                return None, None
            observation = observe(state, spec, restarts, now=self._clock())
            self.phases[ref.uid] = observation.phase
            await self.status.runtime(body, observation, restarts=observation.restarts or 0)
        if observation.restart_in is not None:
            return observation, observation.restart_in
        if observation.phase == "Failed" and spec.ttlSecondsAfterFailed is not None:
            now = self._clock()
            finished = exited_at(state.finished_at, now)
            return observation, max(0.0, finished + spec.ttlSecondsAfterFailed - now)
        return observation, None

    async def _restart(self, body: Mapping[str, Any], observation: Observation) -> bool:
        try:
            await self.runner.restart(observation.container_id or "")
        except DockerError as e:
            logger.warning("restart failed", extra={"object": label(body), "error": str(e)})
            return False
        self._metrics.workload_restarts.inc()
        logger.info("workload container restarted", extra={"object": label(body)})
        return True

    async def _expire(self, body: Mapping[str, Any], ref: ObjectRef) -> bool:
        """ttlSecondsAfterFailed passed: delete the Workload (remove() takes the container)."""
        try:
            deleted = await self._objects.delete(PLURAL, ref)
        except KubeError as e:
            logger.warning("TTL deletion failed", extra={"object": label(body), "error": str(e)})
            return False
        if deleted:
            self._metrics.garbage_collected.labels(action="ttl_deleted").inc()
            logger.info("failed workload deleted after its TTL", extra={"object": label(body)})
        return True

    def _admitted(self, body: Mapping[str, Any], ref: ObjectRef) -> bool:
        verdict = self._verdicts.get(ref.uid)
        if verdict is not None:
            return verdict
        for condition in (body.get("status") or {}).get("conditions") or []:
            if condition.get("type") == ADMITTED:
                return bool(condition.get("status") == "True")
        return True  # not yet recorded: reconcile is about to; the container tells the truth


def _lost_container(body: Mapping[str, Any]) -> bool:
    status = body.get("status") or {}
    return bool(status.get("containerID")) and status.get("phase") in ("Pending", "Running")


async def _next_event(
    queue: asyncio.Queue[ContainerEvent], stop: asyncio.Future[Any], wake_in: float | None
) -> ContainerEvent | None:
    """The next event; None when ``wake_in`` seconds passed first."""
    getter = asyncio.ensure_future(queue.get())
    try:
        done, _ = await asyncio.wait(
            {getter, stop}, timeout=wake_in, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        if not getter.done():
            getter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await getter
    if getter in done:
        # A burst (die, then start) needs one look, not several; a respec must not be lost.
        burst = [getter.result()]
        while not queue.empty():
            burst.append(queue.get_nowait())
        return next((event for event in burst if event.action == RESPEC), burst[-1])
    if stop.done():
        return ContainerEvent(action=RESYNC, container_id="", labels={})
    return None
