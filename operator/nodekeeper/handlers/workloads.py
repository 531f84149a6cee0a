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
from typing import Any

import kopf
from pydantic import ValidationError

from nodekeeper.api import GROUP, VERSION, codes
from nodekeeper.api.times import rfc3339, utcnow
from nodekeeper.api.workload import ADMITTED, KIND, PLURAL, READY, WorkloadSpec
from nodekeeper.handlers.context import AgentContext
from nodekeeper.handlers.ownership import is_foreign, is_own
from nodekeeper.handlers.validation import explain
from nodekeeper.handlers.writing import retrying_status_writes
from nodekeeper.kube.status import ConditionChange
from nodekeeper.runtime.errors import DockerError, DockerUnavailable
from nodekeeper.runtime.events import RESYNC, ContainerEvent
from nodekeeper.runtime.workloads import Observation, WorkloadRef, observe

logger = logging.getLogger(__name__)

RESPEC = "respec"  # the handler replaced the container: the daemon starts counting restarts anew
RETRY_DOCKER_SECONDS = 10.0
RETRY_IMAGE_SECONDS = 30.0


def ref_of(body: kopf.Body) -> WorkloadRef:
    return WorkloadRef(
        uid=str(body.metadata.uid), namespace=str(body.metadata.namespace), name=body.metadata.name
    )


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
    if observation.restart_in is not None:
        moment = utcnow() + datetime.timedelta(seconds=observation.restart_in)
        retry_at = rfc3339(moment)
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
    try:
        spec = WorkloadSpec.model_validate(dict(body.spec))
    except ValidationError as e:
        message = explain(e)
        memo.metrics.handler_errors.labels(kind=KIND, code=codes.INVALID_SPEC).inc()
        refused = await write_admission(
            body,
            memo,
            admitted=False,
            reason=codes.INVALID_SPEC,
            message=message,
            error_code=codes.INVALID_SPEC,
            error_message=message,
        )
        failed = Observation("Failed", False, codes.INVALID_SPEC, message, None, None)
        await write_runtime(body, memo, failed, restarts=0)
        if refused:
            logger.warning("workload refused", extra={"object": label(body), "error": message})
        return

    ref = ref_of(body)
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
        memo.events.notify(ref.uid, ContainerEvent(action=RESPEC, container_id=state.id, labels={}))


async def remove(body: kopf.Body, memo: AgentContext, **_: Any) -> None:
    """delete (finalizer): the container goes before the object does."""
    try:
        removed = await memo.workloads.remove_all(ref_of(body))
    except DockerUnavailable as e:
        raise kopf.TemporaryError(str(e), delay=RETRY_DOCKER_SECONDS) from e
    if removed:
        logger.info("workload container removed", extra={"object": label(body)})


async def monitor(
    body: kopf.Body, memo: AgentContext, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    """One per Workload: report what its container does; restart it as the policy says."""
    ref = ref_of(body)
    queue = memo.events.subscribe(ref.uid)
    restarts = int((body.get("status") or {}).get("restarts") or 0)
    stop = asyncio.ensure_future(stopped.wait())
    try:
        while not stopped:
            try:
                spec = WorkloadSpec.model_validate(dict(body.spec))
            except ValidationError:
                spec = None  # the handler reports it; wait for a fixed spec
            observation = None
            if spec is not None and _admitted(body):
                try:
                    state = await memo.workloads.current(ref)
                except DockerUnavailable:
                    state = None  # an events resync follows the reconnect
                else:
                    observation = observe(state, spec, restarts)
                    await write_runtime(body, memo, observation, restarts=restarts)

            event = await _next_event(queue, stop, observation)
            if event is None and observation is not None and observation.restart_in is not None:
                try:
                    await memo.workloads.restart(observation.container_id or "")
                except DockerError as e:
                    logger.warning("restart failed", extra={"object": label(body), "error": str(e)})
                    continue
                restarts += 1
                memo.metrics.workload_restarts.inc()
                logger.info(
                    "workload container restarted",
                    extra={"object": label(body), "restarts": restarts},
                )
            elif event is not None and event.action == RESPEC:
                restarts = 0
    finally:
        stop.cancel()
        memo.events.unsubscribe(ref.uid, queue)


def _admitted(body: kopf.Body) -> bool:
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("type") == ADMITTED:
            return bool(condition.get("status") == "True")
    return True  # not yet recorded: the handler is about to; the container tells the truth


async def _next_event(
    queue: asyncio.Queue[ContainerEvent], stop: asyncio.Future[Any], observation: Observation | None
) -> ContainerEvent | None:
    """The next container event; None when the restart delay passed first (or on stop)."""
    timeout = observation.restart_in if observation is not None else None
    getter = asyncio.ensure_future(queue.get())
    try:
        done, _ = await asyncio.wait(
            {getter, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
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
