"""One executed BackupRun as one labelled container, followed until it ends.

The container carries the run's uid, namespace and name, so an agent that restarts finds it and
follows it instead of starting the task twice. The timeout counts from the container's own start
time, so it holds across restarts too. Following polls the container's state (a few inspections
a second at most per running task) rather than holding a blocking wait in a thread, which would
keep the agent from stopping.

When the task ends, its whole log is read (``runtime.logstream``) and parsed for restic's
summary; the container is removed by the caller only after that log is stored. On a timeout the
log is read first and the container is then removed, which kills it.
"""

import asyncio
import dataclasses
import datetime
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from nodekeeper.api.backuprun import BackupRunSpec
from nodekeeper.api.names import LABEL_BACKUPRUN_UID, LABEL_NAME, LABEL_NAMESPACE
from nodekeeper.api.refs import ObjectRef
from nodekeeper.api.times import parse_datetime
from nodekeeper.backups import outcomes, restic
from nodekeeper.backups.outcomes import Outcome
from nodekeeper.kube.errors import KubeRejected
from nodekeeper.kube.protocols import SecretReader
from nodekeeper.kube.secrets import SecretKeyMissing
from nodekeeper.runtime.containers import ContainerSpec, ContainerState
from nodekeeper.runtime.errors import ContainerCreateFailed, ContainerNotFound, ImageNotFound
from nodekeeper.runtime.protocols import ContainerRuntime

POLL_SECONDS = 1.0


class TaskStartError(Exception):
    """The task cannot start; ``reason`` is the Completed reason the run ends with."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ContainerLost(Exception):
    """The task's container vanished before it ended."""


@dataclasses.dataclass(frozen=True)
class Ending:
    container_id: str
    outcome: Outcome
    exit_code: int | None
    started: datetime.datetime
    finished: datetime.datetime
    log: bytes
    report: restic.TaskReport

    @property
    def duration_seconds(self) -> float:
        return round(max((self.finished - self.started).total_seconds(), 0.0), 3)


def container_spec(ref: ObjectRef, spec: BackupRunSpec, env: Mapping[str, str]) -> ContainerSpec:
    return ContainerSpec(
        name=f"nk-br-{ref.namespace}-{ref.name}-{ref.uid[:8]}"[:128],
        image=spec.image or "",
        command=spec.command,
        args=spec.args,
        env=dict(env),
        labels={LABEL_BACKUPRUN_UID: ref.uid, LABEL_NAMESPACE: ref.namespace, LABEL_NAME: ref.name},
    )


class TaskLogs(Protocol):
    """Where a finished task's whole log comes from: the log store (after the container is
    drained), or Docker's API when the pipeline does not follow the container."""

    async def read_bytes(self, container_id: str) -> bytes: ...


class TaskRunner:
    def __init__(
        self,
        containers: ContainerRuntime,
        logs: TaskLogs,
        secrets: SecretReader,
        *,
        poll_seconds: float = POLL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._containers = containers
        self._logs = logs
        self._secrets = secrets
        self._poll_seconds = poll_seconds
        self._clock = clock

    async def find(self, ref: ObjectRef) -> ContainerState | None:
        found = await self._containers.find({LABEL_BACKUPRUN_UID: ref.uid})
        return found[0] if found else None

    async def environment(self, ref: ObjectRef, spec: BackupRunSpec) -> dict[str, str]:
        env: dict[str, str] = {}
        for variable in spec.env or []:
            if variable.valueFrom is not None:
                source = variable.valueFrom.secretKeyRef
                try:
                    env[variable.name] = await self._secrets.value(
                        ref.namespace, source.name, source.key
                    )
                except (SecretKeyMissing, KubeRejected) as e:  # KubeUnavailable is retried
                    raise TaskStartError(
                        outcomes.SECRET_NOT_FOUND,
                        f"env {variable.name}: {e}; create the Secret or fix secretKeyRef",
                    ) from e
            else:
                env[variable.name] = variable.value or ""
        return env

    async def start(self, ref: ObjectRef, spec: BackupRunSpec) -> ContainerState:
        """Start the task; TaskStartError when it cannot (DockerUnavailable is raised as is)."""
        env = await self.environment(ref, spec)
        try:
            return await self._containers.run(container_spec(ref, spec, env))
        except ImageNotFound as e:
            raise TaskStartError(outcomes.IMAGE_NOT_FOUND, str(e)) from e
        except ContainerCreateFailed as e:
            raise TaskStartError(outcomes.TASK_START_FAILED, str(e)) from e

    def started_at(self, state: ContainerState) -> datetime.datetime:
        return parse_datetime(state.started_at) or datetime.datetime.fromtimestamp(
            self._clock(), tz=datetime.UTC
        )

    async def follow(
        self,
        state: ContainerState,
        *,
        timeout_seconds: int | None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> Ending | None:
        """Wait for the task to end (or time out) and read its log; None when ``stopping``.

        Raises ContainerLost when the container disappears first.
        """
        started = self.started_at(state)
        deadline = started.timestamp() + timeout_seconds if timeout_seconds else None
        container_id = state.id
        while True:
            try:
                state = await self._containers.inspect(container_id)
            except ContainerNotFound as e:
                raise ContainerLost(f"the task's container {container_id[:12]} vanished") from e
            if state.status == "created":  # made, then the agent stopped before starting it
                await self._containers.start(container_id)
                continue
            if state.status in ("exited", "dead"):
                code = state.exit_code if state.exit_code is not None else -1
                finished = parse_datetime(state.finished_at) or self._now()
                return await self._ending(
                    state, outcomes.of_exit_code(code), code, started, finished
                )
            now = self._clock()
            if deadline is not None and now >= deadline:
                outcome = outcomes.of_timeout(timeout_seconds or 0)
                # Killed first, so its log is complete (and can be drained) before it is read,
                # and its exit code (137: SIGKILL) is known.
                await self._containers.stop(state.id)
                killed = await self._containers.inspect(state.id)
                return await self._ending(killed, outcome, killed.exit_code, started, self._now())
            if stopping():
                return None
            wait = (
                self._poll_seconds if deadline is None else min(self._poll_seconds, deadline - now)
            )
            await asyncio.sleep(max(wait, 0.01))

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self._clock(), tz=datetime.UTC)

    async def _ending(
        self,
        state: ContainerState,
        outcome: Outcome,
        exit_code: int | None,
        started: datetime.datetime,
        finished: datetime.datetime,
    ) -> Ending:
        try:
            log = await self._logs.read_bytes(state.id)
        except ContainerNotFound as e:
            raise ContainerLost(f"the task's container {state.id[:12]} vanished") from e
        report = restic.parse(log.decode("utf-8", errors="replace").splitlines())
        return Ending(
            container_id=state.id,
            outcome=outcome,
            exit_code=exit_code,
            started=started,
            finished=finished,
            log=log,
            report=report,
        )

    async def remove(self, container_id: str) -> bool:
        """Remove (and so kill, if it still runs) the task's container."""
        return await self._containers.remove(container_id)

    async def remove_all(self, ref: ObjectRef) -> int:
        removed = 0
        for state in await self._containers.find({LABEL_BACKUPRUN_UID: ref.uid}):
            removed += await self._containers.remove(state.id)
        return removed
