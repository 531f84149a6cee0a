"""BackupRun handlers: validate, execute or record the run, keep its status, labels and history.

- ``accept`` (create / update(spec) / resume) validates the spec. An invalid spec ends the run at
  once (phase Failed, ``Completed`` with reason InvalidSpec) so ``kubectl wait
  --for=condition=Completed`` returns. An ingested run (``spec.result``) is recorded here: its
  log goes to ConfigMaps, then its status. Recording the same result again changes nothing: no
  write, no Event.
- ``execute`` (a daemon per executed run) marks it Pending, starts the task's container, or
  follows the one that exists (an agent restarted mid-run), until it ends; then stores the log,
  writes the final status, removes the container and applies the history limits. A finished run
  is never rerun.
- ``remove`` (delete) removes a still-running task's container.

Status has one writer (field manager ``nodekeeper-agent``); every write sends every field it
owns, computed here, so a stale body cannot resurrect an old value.
"""

import logging
from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from nodekeeper.api import GROUP, VERSION
from nodekeeper.api.backuprun import COMPLETED, KIND, PLURAL, RUNNING, BackupRunSpec
from nodekeeper.api.codes import BACKUP_PENDING, BACKUP_RUNNING, BACKUP_STARTED, INVALID_SPEC
from nodekeeper.api.names import ANNOTATION_LOG_CHUNKS
from nodekeeper.api.refs import ObjectRef
from nodekeeper.api.times import parse_seconds, rfc3339, utcnow
from nodekeeper.api.validation import explain
from nodekeeper.backups import outcomes
from nodekeeper.backups.logchunks import LogInfo
from nodekeeper.backups.outcomes import Outcome
from nodekeeper.backups.services import BackupServices
from nodekeeper.backups.tasks import ContainerLost, Ending, TaskStartError
from nodekeeper.handlers.context import AgentContext
from nodekeeper.handlers.ownership import is_foreign, is_own
from nodekeeper.handlers.writing import retrying_status_writes
from nodekeeper.kube.errors import KubeError, KubeUnavailable
from nodekeeper.kube.status import ConditionChange
from nodekeeper.runtime.errors import DockerError, DockerUnavailable

logger = logging.getLogger(__name__)

# How long an ingested run waits for the chunks its annotation announces before it is recorded
# with what is there.
CHUNK_WAIT_SECONDS = 120.0
RETRY_DOCKER_SECONDS = 10.0
RETRY_KUBE_SECONDS = 5.0
STATUS_FIELDS = (
    "observedGeneration",
    "phase",
    "startTime",
    "completionTime",
    "durationSeconds",
    "exitCode",
    "snapshotId",
    "summary",
    "errorMessage",
    "log",
)


def label(body: kopf.Body) -> str:
    return f"{body.metadata.namespace}/{body.metadata.name}"


def _conditions(body: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = body.get("status") or {}
    found = [c for c in status.get("conditions") or [] if isinstance(c, Mapping)]
    return {str(c.get("type")): c for c in found}


def is_completed(body: Mapping[str, Any]) -> bool:
    completed = _conditions(body).get(COMPLETED)
    return completed is not None and completed.get("status") == "True"


def is_executed(body: kopf.Body, memo: AgentContext, **_: Any) -> bool:
    """An own run with a task to execute, on an agent wired to execute it.

    The daemon (and so kopf's finalizer) exists only for such runs: ingested runs and agents
    without the backup services never block a deletion.
    """
    executed = bool((body.get("spec") or {}).get("image"))
    return executed and is_own(body, memo) and memo.backups is not None


def _all_fields(body: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """Every status field this writer owns: the changes, else nothing (a new status)."""
    fields: dict[str, Any] = dict.fromkeys(STATUS_FIELDS)
    fields["observedGeneration"] = (body.get("metadata") or {}).get("generation")
    fields.update(changes)
    return fields


async def _write(
    body: Mapping[str, Any],
    memo: AgentContext,
    fields: Mapping[str, Any],
    conditions: list[ConditionChange],
) -> bool:
    async with retrying_status_writes():
        return await memo.backuprun_status.apply(body, fields=fields, conditions=conditions)


async def _label(services: BackupServices, body: Mapping[str, Any], phase: str | None) -> None:
    try:
        await services.history.label(body, phase)
    except KubeError as e:  # labels help finding runs; status stays the truth
        logger.warning("labelling the run failed", extra={"error": str(e)})


async def _prune(services: BackupServices, body: Mapping[str, Any]) -> None:
    spec = body.get("spec") or {}
    try:
        await services.history.prune(str(body["metadata"]["namespace"]), str(spec.get("policy")))
    except KubeError as e:  # the next run's end tries again
        logger.warning("applying the history limits failed", extra={"error": str(e)})


def _post(body: kopf.Body, outcome: Outcome) -> None:
    kind = "Normal" if outcome.phase == "Succeeded" else "Warning"
    kopf.event(body, type=kind, reason=outcome.reason, message=outcome.message)


async def accept(body: kopf.Body, memo: AgentContext, **_: Any) -> None:
    generation = body.metadata.get("generation")
    try:
        spec = BackupRunSpec.model_validate(dict(body.spec))
    except ValidationError as e:
        message = explain(e)
        memo.metrics.handler_errors.labels(kind=KIND, code=INVALID_SPEC).inc()
        await _write(
            body,
            memo,
            {"observedGeneration": generation, "phase": "Failed", "errorMessage": message},
            [ConditionChange(COMPLETED, "True", INVALID_SPEC, message)],
        )
        services = memo.backups
        if services is not None:
            await _label(services, body, "Failed")
        return

    services = memo.backups
    if services is None:  # not wired to execute: validation only
        await _write(
            body,
            memo,
            {"observedGeneration": generation, "phase": "Pending", "errorMessage": None},
            [],
        )
        return
    if spec.result is not None:
        await record(body, memo, services, spec)
    # An executed run's status is the daemon's alone (one writer: no stale overwrite).


async def record(
    body: kopf.Body, memo: AgentContext, services: BackupServices, spec: BackupRunSpec
) -> None:
    """Record an ingested result: log chunks first, then the status; idempotent."""
    result = spec.result
    assert result is not None
    ref = ObjectRef.of(body)
    prepared = None
    log_info: LogInfo | None = None
    note = ""
    if result.log:
        prepared = services.logs.prepare(result.log.encode())
        log_info = prepared.info()
    elif ANNOTATION_LOG_CHUNKS in (body.metadata.annotations or {}):
        log_info, note = await _announced_log(body, services, ref)

    outcome = outcomes.of_result(result.status, result.errorMessage)
    fields = _all_fields(
        body,
        phase=result.status,
        durationSeconds=result.durationSeconds,
        snapshotId=result.snapshotId,
        errorMessage=(result.errorMessage or "") + note or None,
        log=log_info,
    )
    condition = ConditionChange(COMPLETED, "True", outcome.reason, outcome.message)
    desired = memo.backuprun_status.desired(body, fields=fields, conditions=[condition])
    current = body.get("status") or {}
    if all(current.get(name) == desired.get(name) for name in STATUS_FIELDS) and is_completed(body):
        # The same result again: nothing to write, nothing to announce.
        memo.metrics.status_writes.labels(kind=KIND, outcome="unchanged").inc()
        await _label(services, body, result.status)
        return
    if prepared is not None:
        try:
            await services.logs.store(ref, prepared)
        except KubeUnavailable as e:
            raise kopf.TemporaryError(str(e), delay=RETRY_KUBE_SECONDS) from e
    if await _write(body, memo, fields, [condition]):
        _post(body, outcome)
        services.metrics.ended(
            body,
            source="ingested",
            phase=result.status,
            reason=outcome.reason,
            duration_seconds=result.durationSeconds,
            log_bytes=log_info["bytes"] if log_info else None,
            data_added=None,
            completed_at=parse_seconds(body.metadata.get("creationTimestamp")),
        )
        logger.info("backup result recorded", extra={"object": label(body), "phase": result.status})
    await _label(services, body, result.status)
    await _prune(services, body)


async def _announced_log(
    body: kopf.Body, services: BackupServices, ref: ObjectRef
) -> tuple[LogInfo | None, str]:
    """The log `backups ingest` wrote; wait (retrying) until all announced chunks exist."""
    try:
        expected = int(body.metadata.annotations[ANNOTATION_LOG_CHUNKS])
        chunks, info = await services.logs.stored(ref)
    except ValueError:
        return None, ""
    except KubeUnavailable as e:
        raise kopf.TemporaryError(str(e), delay=RETRY_KUBE_SECONDS) from e
    if len(chunks) >= expected:
        return info, ""
    created = parse_seconds(body.metadata.get("creationTimestamp")) or 0.0
    if utcnow().timestamp() - created < CHUNK_WAIT_SECONDS:
        raise kopf.TemporaryError(f"waiting for log chunks ({len(chunks)}/{expected})", delay=2)
    return info, f" (log incomplete: {len(chunks)} of {expected} chunks were written)"


async def execute(
    body: kopf.Body, memo: AgentContext, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    """One per executed run: start or follow its task to the end, exactly once."""
    services = memo.backups
    if services is None:
        return
    try:
        spec = BackupRunSpec.model_validate(dict(body.spec))
    except ValidationError:
        return  # accept reports it
    ref = ObjectRef.of(body)
    if is_completed(body):
        # Finished: never rerun. A container left by a crash after the final write goes now.
        await _quietly_remove(services, ref)
        return
    try:
        await _execute(body, memo, services, spec, ref, stopped)
    except DockerUnavailable as e:
        raise kopf.TemporaryError(str(e), delay=RETRY_DOCKER_SECONDS) from e
    except KubeUnavailable as e:
        raise kopf.TemporaryError(str(e), delay=RETRY_KUBE_SECONDS) from e


async def _execute(
    body: kopf.Body,
    memo: AgentContext,
    services: BackupServices,
    spec: BackupRunSpec,
    ref: ObjectRef,
    stopped: kopf.DaemonStopped,
) -> None:
    state = await services.tasks.find(ref)
    status = body.get("status") or {}
    if state is None:
        if status.get("startTime"):
            lost = Outcome("Failed", outcomes.CONTAINER_LOST, "the task's container vanished")
            await _finish(body, memo, services, lost, started=status.get("startTime"))
            return
        if not status.get("phase"):
            await _write(
                body,
                memo,
                _all_fields(body, phase="Pending"),
                [
                    ConditionChange(
                        RUNNING, "False", BACKUP_PENDING, f"starting on {memo.node_name}"
                    ),
                    ConditionChange(COMPLETED, "False", BACKUP_PENDING, "the task has not run yet"),
                ],
            )
            await _label(services, body, "Pending")
        try:
            state = await services.tasks.start(ref, spec)
        except TaskStartError as e:
            await _finish(body, memo, services, Outcome("Failed", e.reason, str(e)))
            return
        kopf.event(
            body, type="Normal", reason=BACKUP_STARTED, message=f"task started on {memo.node_name}"
        )
        logger.info(
            "backup task started", extra={"object": label(body), "container": state.id[:12]}
        )
    start_time = rfc3339(services.tasks.started_at(state))
    await _write(
        body,
        memo,
        _all_fields(body, phase="Running", startTime=start_time),
        [
            ConditionChange(
                RUNNING, "True", BACKUP_STARTED, f"the task runs in container {state.id[:12]}"
            ),
            ConditionChange(COMPLETED, "False", BACKUP_RUNNING, "the task has not ended yet"),
        ],
    )
    await _label(services, body, "Running")
    try:
        ending = await services.tasks.follow(
            state, timeout_seconds=spec.timeoutSeconds, stopping=lambda: bool(stopped)
        )
    except ContainerLost as e:
        lost = Outcome("Failed", outcomes.CONTAINER_LOST, str(e))
        await _finish(body, memo, services, lost, started=start_time)
        return
    if ending is None:
        return  # the agent stops; the next one follows the container
    await _finish(body, memo, services, ending.outcome, ending=ending, started=start_time)
    await services.tasks.remove(ending.container_id)  # only now: the log is stored


async def _finish(
    body: kopf.Body,
    memo: AgentContext,
    services: BackupServices,
    outcome: Outcome,
    *,
    ending: Ending | None = None,
    started: str | None = None,
) -> None:
    """Store the log, write the final status, post the Event, count it, label it, prune."""
    now = utcnow()
    log_info: LogInfo | None = None
    if ending is not None:
        prepared = await services.logs.store(ObjectRef.of(body), ending.log)
        log_info = prepared.info()
    report = ending.report if ending is not None else None
    error = None
    if outcome.failed:
        error = (report.error_message if report else None) or outcome.message
    duration = ending.duration_seconds if ending is not None else None
    fields = _all_fields(
        body,
        phase=outcome.phase,
        startTime=rfc3339(ending.started) if ending is not None else started,
        completionTime=rfc3339(ending.finished) if ending is not None else rfc3339(now),
        durationSeconds=duration,
        exitCode=ending.exit_code if ending is not None else None,
        snapshotId=report.snapshot_id if report else None,
        summary=report.summary.as_status() if report and report.summary else None,
        errorMessage=error,
        log=log_info,
    )
    written = await _write(
        body,
        memo,
        fields,
        [
            ConditionChange(RUNNING, "False", outcome.reason, "the task has ended"),
            ConditionChange(COMPLETED, "True", outcome.reason, error or outcome.message),
        ],
    )
    if written:
        _post(body, outcome)
        services.metrics.ended(
            body,
            source="executed",
            phase=outcome.phase,
            reason=outcome.reason,
            duration_seconds=duration,
            log_bytes=log_info["bytes"] if log_info else None,
            data_added=report.summary.data_added if report and report.summary else None,
            completed_at=(ending.finished if ending is not None else now).timestamp(),
        )
        logger.info(
            "backup task ended",
            extra={"object": label(body), "phase": outcome.phase, "reason": outcome.reason},
        )
    await _label(services, body, outcome.phase)
    await _prune(services, body)


async def _quietly_remove(services: BackupServices, ref: ObjectRef) -> None:
    try:
        await services.tasks.remove_all(ref)
    except DockerError as e:
        logger.warning("removing a finished task's container failed", extra={"error": str(e)})


async def remove(body: kopf.Body, memo: AgentContext, **_: Any) -> None:
    """delete: a task still running goes with its run (its ConfigMaps go by owner reference)."""
    services = memo.backups
    if services is None:
        return
    try:
        await services.tasks.remove_all(ObjectRef.of(body))
    except DockerUnavailable as e:
        raise kopf.TemporaryError(str(e), delay=RETRY_DOCKER_SECONDS) from e


async def count_foreign(memo: AgentContext, **_: Any) -> None:
    memo.metrics.foreign_events.labels(kind=KIND).inc()


def register(registry: kopf.OperatorRegistry) -> None:
    resource = (GROUP, VERSION, PLURAL)
    kopf.on.resume(*resource, when=is_own, registry=registry, id="accept")(accept)
    kopf.on.create(*resource, when=is_own, registry=registry, id="accept")(accept)
    kopf.on.update(*resource, field="spec", when=is_own, registry=registry, id="accept")(accept)
    kopf.on.delete(*resource, when=is_executed, registry=registry, id="remove", optional=True)(
        remove
    )
    kopf.daemon(
        *resource, when=is_executed, registry=registry, id="execute", cancellation_timeout=2.0
    )(execute)
    kopf.on.event(*resource, when=is_foreign, registry=registry, id="foreign")(count_foreign)
