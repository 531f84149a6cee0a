"""Workload handlers: admit, run the container, keep status true, clean up.

Two status writers share a Workload, each with its own field manager:

- the **admission** writer (``nodekeeper-agent``) owns ``observedGeneration``, ``errorCode``,
  ``message`` and the ``Admitted`` condition, written by the create/update/resume handler;
- the **runtime** writer (``nodekeeper-runtime``) owns ``phase``, ``containerID``, ``restarts``,
  ``lastExitCode``, ``nextRetryAt`` and the ``Ready`` condition, written by a per-Workload kopf
  daemon that follows the container's Docker events.

The handler starts the container and nudges the daemon; the daemon reports what the container
does and restarts it with backoff as ``restartPolicy`` says. Deleting a Workload removes its
container first (finalizer).
"""

import asyncio
import contextlib
import datetime
import logging
import time
from typing import Any

import kopf
from pydantic import ValidationError

from nodekeeper.api import GROUP, VERSION, codes
from nodekeeper.api.refs import ObjectRef
from nodekeeper.api.times import rfc3339
from nodekeeper.api.workload import ADMITTED, KIND, PLURAL, READY, WorkloadSpec
from nodekeeper.handlers.context import AgentContext
from nodekeeper.handlers.ownership import is_foreign, is_own
from nodekeeper.handlers.validation import explain
from nodekeeper.handlers.writing import retrying_status_writes
from nodekeeper.kube.errors import KubeError
from nodekeeper.kube.status import ConditionChange
from nodekeeper.runtime.errors import DockerError, DockerUnavailable
from nodekeeper.runtime.events import RESYNC, ContainerEvent
from nodekeeper.workloads.policy import Observation, exited_at, observe

logger = logging.getLogger(__name__)

RESPEC = "respec"  # the handler replaced the container: the daemon starts counting restarts anew
RETRY_DOCKER_SECONDS = 10.0
RETRY_IMAGE_SECONDS = 30.0
RETRY_PRESSURE_SECONDS = 30.0  # a refused Workload is looked at again until pressure clears


async def _needs_new_container(memo: AgentContext, ref: ObjectRef) -> bool:
    """The gate holds back new containers only: a running Workload is never stopped by it."""
    try:
        return await memo.workloads.current(ref) is None
    except DockerError:
        return True


def label(body: kopf.Body) -> str:
    return f"{body.metadata.namespace}/{body.metadata.name}"


async def write_admission(
    body: kopf.Body,
    memo: AgentContext,
    *,
    admitted: bool,
    reason: str,
    message: str,
    error_code: str | None = None,
    error_message: str | None = None,
) -> bool:
    async with retrying_status_writes():
        return await memo.workload_status.apply(
            body,
            fields={
                "observedGeneration": body.metadata.get("generation"),
                "errorCode": error_code,
                "message": error_message,
            },
            conditions=[
                ConditionChange(ADMITTED, "True" if admitted else "False", reason, message)
            ],
        )


async def write_runtime(
    body: kopf.Body, memo: AgentContext, observation: Observation, *, restarts: int
) -> bool:
    retry_at = None
    if observation.retry_at is not None:
        retry_at = rfc3339(datetime.datetime.fromtimestamp(observation.retry_at, tz=datetime.UTC))
    async with retrying_status_writes():
        return await memo.workload_runtime_status.apply(
            body,
            fields={
                "phase": observation.phase,
                "containerID": observation.container_id,
                "restarts": restarts,
                "lastExitCode": observation.exit_code,
                "nextRetryAt": retry_at,
            },
            conditions=[
                ConditionChange(
                    READY,
                    "True" if observation.ready else "False",
                    observation.reason,
                    observation.message,
                )
            ],
        )


async def reconcile(body: kopf.Body, memo: AgentContext, reason: str, **_: Any) -> None:
    """create / update(spec) / resume: admit the spec, then make sure its container exists."""
    uid = str(body.metadata.uid)
    nudge = RESYNC
    try:
        with memo.metrics.reconcile_duration.labels(kind=KIND).time():
            async with memo.lock_for(uid):
                nudge = await _reconcile(body, memo, reason)
    finally:
        # Always: the daemon's body lags behind these writes; the nudge makes it look again.
        memo.events.notify(uid, ContainerEvent(action=nudge, container_id="", labels={}))


async def _refuse(
    body: kopf.Body, memo: AgentContext, *, code: str, message: str, phase: str
) -> bool:
    """Record a refusal: Admitted=False with ``code``, and the runtime side in ``phase``.

    Returns True when the admission status changed (a refusal worth logging).
    """
    memo.verdicts[str(body.metadata.uid)] = False
    memo.metrics.handler_errors.labels(kind=KIND, code=code).inc()
    changed = await write_admission(
        body,
        memo,
        admitted=False,
        reason=code,
        message=message,
        error_code=code,
        error_message=message,
    )
    refused = Observation(phase, False, code, message, None, None)
    await write_runtime(body, memo, refused, restarts=0)
    return changed


async def _reconcile(body: kopf.Body, memo: AgentContext, reason: str) -> str:
    """Returns the nudge for the daemon: RESPEC when a new container replaced the old one."""
    uid = str(body.metadata.uid)
    try:
        spec = WorkloadSpec.model_validate(dict(body.spec))
    except ValidationError as e:
        message = explain(e)
        refused = await _refuse(
            body, memo, code=codes.INVALID_SPEC, message=message, phase="Failed"
        )
        if refused:
            logger.warning("workload refused", extra={"object": label(body), "error": message})
        return RESYNC

    ref = ObjectRef.of(body)
    if not memo.image_policy.allowed(ref.namespace, spec.image):
        message = (
            f"image {spec.image!r} is not allowed in namespace {ref.namespace} on this node "
            f"(allowed: {memo.image_policy.describe(ref.namespace)}); use an allowed image"
        )
        await _refuse(body, memo, code=codes.IMAGE_NOT_ALLOWED, message=message, phase="Failed")
        await memo.workloads.remove_all(ref)  # a container of an earlier, allowed spec goes too
        return RESYNC

    if memo.admission is not None and await _needs_new_container(memo, ref):
        refusal = memo.admission.check()
        if refusal is not None:
            await _refuse(body, memo, code=refusal.code, message=refusal.message, phase="Pending")
            raise kopf.TemporaryError(refusal.message, delay=RETRY_PRESSURE_SECONDS)

    memo.verdicts[uid] = True
    try:
        state, created = await memo.workloads.ensure(ref, spec)
    except DockerError as e:
        memo.metrics.handler_errors.labels(kind=KIND, code=e.code).inc()
        await write_admission(
            body,
            memo,
            admitted=True,
            reason=codes.ADMITTED,
            message=f"accepted by node {memo.node_name}",
            error_code=e.code,
            error_message=str(e),
        )
        waiting = Observation("Pending", False, e.code, str(e), None, None)
        await write_runtime(body, memo, waiting, restarts=0)
        delay = RETRY_DOCKER_SECONDS if isinstance(e, DockerUnavailable) else RETRY_IMAGE_SECONDS
        raise kopf.TemporaryError(str(e), delay=delay) from e

    await write_admission(
        body,
        memo,
        admitted=True,
        reason=codes.ADMITTED,
        message=f"accepted by node {memo.node_name}",
    )
    if created:
        logger.info(
            "workload container started",
            extra={"object": label(body), "container": state.id[:12], "reason": reason},
        )
        return RESPEC
    return RESYNC


async def remove(body: kopf.Body, memo: AgentContext, **_: Any) -> None:
    """delete (finalizer): the container goes before the object does."""
    ref = ObjectRef.of(body)
    try:
        async with memo.lock_for(ref.uid):  # a daemon look in flight cannot recreate it after
            removed = await memo.workloads.remove_all(ref)
    except DockerUnavailable as e:
        raise kopf.TemporaryError(str(e), delay=RETRY_DOCKER_SECONDS) from e
    if removed:
        logger.info("workload container removed", extra={"object": label(body)})


async def monitor(
    body: kopf.Body, memo: AgentContext, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    """One per Workload: report what its container does; restart it as the policy says."""
    ref = ObjectRef.of(body)
    queue = memo.events.subscribe(ref.uid)
    restarts = int((body.get("status") or {}).get("restarts") or 0)
    stop = asyncio.ensure_future(stopped.wait())
    try:
        while not stopped:
            if body.metadata.get("deletionTimestamp"):
                await stop  # going away: the finalizer handler removes the container
                break
            observation, wake_in = await _look(body, memo, ref, restarts, stopped)
            if observation is not None and observation.restarts is not None:
                restarts = observation.restarts  # a long healthy run started the count anew
            event = await _next_event(queue, stop, wake_in)
            if event is not None:
                if event.action == RESPEC:
                    restarts = 0
                continue
            if observation is None or stopped:
                continue
            if observation.restart_in is not None:
                if await _restart(body, memo, observation):
                    restarts += 1
            elif observation.phase == "Failed":
                if await _expire(body, memo, ref):
                    await stop  # deleted: kopf stops this daemon when the deletion arrives
                    break
                await _next_event(queue, stop, RETRY_DOCKER_SECONDS)  # not in a tight loop
    finally:
        stop.cancel()
        memo.events.unsubscribe(ref.uid, queue)
        if body.metadata.get("deletionTimestamp"):
            memo.forget(ref.uid)


async def _look(
    body: kopf.Body, memo: AgentContext, ref: ObjectRef, restarts: int, stopped: Any
) -> tuple[Observation | None, float | None]:
    """Observe the container and report it; also say when to wake up without an event."""
    try:
        spec = WorkloadSpec.model_validate(dict(body.spec))
    except ValidationError:
        return None, None  # the handler reports it; wait for a fixed spec
    if not _admitted(body, memo, ref):
        return None, None
    async with memo.lock_for(ref.uid):
        if stopped or body.metadata.get("deletionTimestamp"):
            return None, None
        try:
            state = await memo.workloads.current(ref)
            if state is None and _lost_container(body):
                # It ran, and now it is gone (removed behind our back): make it again.
                state, _ = await memo.workloads.ensure(ref, spec)
                memo.metrics.garbage_collected.labels(action="recreated").inc()
                logger.warning(
                    "workload container vanished; recreated", extra={"object": label(body)}
                )
        except DockerError as e:
            failed = Observation("Pending", False, e.code, str(e), None, None)
            await write_runtime(body, memo, failed, restarts=restarts)
            return None, RETRY_DOCKER_SECONDS
        if state is None:
            # Not created yet: the handler is about to, and its nudge brings the first real
            # look. Reporting "no container" first would cost every new Workload one more write.
            memo.phases[ref.uid] = "Pending"
            return None, None
        observation = observe(state, spec, restarts)
        memo.phases[ref.uid] = observation.phase
        await write_runtime(body, memo, observation, restarts=observation.restarts or 0)
    if observation.restart_in is not None:
        return observation, observation.restart_in
    if observation.phase == "Failed" and spec.ttlSecondsAfterFailed is not None:
        finished = exited_at(state.finished_at, time.time())
        return observation, max(0.0, finished + spec.ttlSecondsAfterFailed - time.time())
    return observation, None


def _lost_container(body: kopf.Body) -> bool:
    status = body.get("status") or {}
    return bool(status.get("containerID")) and status.get("phase") in ("Pending", "Running")


async def _restart(body: kopf.Body, memo: AgentContext, observation: Observation) -> bool:
    try:
        await memo.workloads.restart(observation.container_id or "")
    except DockerError as e:
        logger.warning("restart failed", extra={"object": label(body), "error": str(e)})
        return False
    memo.metrics.workload_restarts.inc()
    logger.info("workload container restarted", extra={"object": label(body)})
    return True


async def _expire(body: kopf.Body, memo: AgentContext, ref: ObjectRef) -> bool:
    """ttlSecondsAfterFailed passed: delete the Workload (its finalizer removes the container)."""
    try:
        deleted = await memo.objects.delete(PLURAL, ref)
    except KubeError as e:
        logger.warning("TTL deletion failed", extra={"object": label(body), "error": str(e)})
        return False
    if deleted:
        memo.metrics.garbage_collected.labels(action="ttl_deleted").inc()
        logger.info("failed workload deleted after its TTL", extra={"object": label(body)})
    return True


def _admitted(body: kopf.Body, memo: AgentContext, ref: ObjectRef) -> bool:
    verdict = memo.verdicts.get(ref.uid)
    if verdict is not None:
        return verdict
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("type") == ADMITTED:
            return bool(condition.get("status") == "True")
    return True  # not yet recorded: the handler is about to; the container tells the truth


async def _next_event(
    queue: asyncio.Queue[ContainerEvent], stop: asyncio.Future[Any], wake_in: float | None
) -> ContainerEvent | None:
    """The next container event; None when ``wake_in`` seconds passed first."""
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


async def count_foreign(memo: AgentContext, **_: Any) -> None:
    memo.metrics.foreign_events.labels(kind=KIND).inc()


def register(registry: kopf.OperatorRegistry) -> None:
    resource = (GROUP, VERSION, PLURAL)
    kopf.on.resume(*resource, when=is_own, registry=registry, id="reconcile")(reconcile)
    kopf.on.create(*resource, when=is_own, registry=registry, id="reconcile")(reconcile)
    kopf.on.update(*resource, field="spec", when=is_own, registry=registry, id="reconcile")(
        reconcile
    )
    kopf.on.delete(*resource, when=is_own, registry=registry, id="remove")(remove)
    kopf.daemon(*resource, when=is_own, registry=registry, id="monitor", cancellation_timeout=2.0)(
        monitor
    )
    kopf.on.event(*resource, when=is_foreign, registry=registry, id="foreign")(count_foreign)
