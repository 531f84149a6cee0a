"""What a Workload's container state means: phase, readiness, reason, and when to restart.

:func:`observe` turns a container's state and the restart policy into what the Workload's status
should say, including when to restart and with which backoff. It is pure (time and randomness
are passed in), so every phase, backoff and retry limit is tested without Docker.
"""

import dataclasses
import random
import time

from nodekeeper.api import codes
from nodekeeper.api.times import parse_seconds
from nodekeeper.api.workload import Backoff, WorkloadSpec
from nodekeeper.runtime.containers import ContainerState
from nodekeeper.workloads.backoff import restart_delay


@dataclasses.dataclass(frozen=True)
class Observation:
    """What the Workload's status should say about its container."""

    phase: str
    ready: bool
    reason: str
    message: str
    container_id: str | None
    exit_code: int | None
    restart_in: float | None = None  # seconds until the next restart while backing off
    retry_at: float | None = None  # when that is (Unix time): the same on every look
    restarts: int | None = None  # the restart count this observation counted with


HEALTHY_RUN_SECONDS = 600.0  # a run this long starts the count anew, as the kubelet's backoff


def observe(
    state: ContainerState | None,
    spec: WorkloadSpec,
    restarts: int,
    *,
    rng: random.Random | None = None,
    now: float | None = None,
) -> Observation:
    """What status should say about ``state``, with ``restarts`` counted since the last run
    that lasted HEALTHY_RUN_SECONDS: a service that crashes once a day never reaches
    ``backoff.maxRetries`` for it (the Observation says which count it used)."""
    current = time.time() if now is None else now
    if restarts and state is not None and state.started_at:
        started = exited_at(state.started_at, current)
        if exited_at(state.finished_at, current) - started >= HEALTHY_RUN_SECONDS:
            restarts = 0
    seen = _observe(state, spec, restarts, rng=rng, now=current)
    return dataclasses.replace(seen, restarts=restarts)


def _observe(
    state: ContainerState | None,
    spec: WorkloadSpec,
    restarts: int,
    *,
    rng: random.Random | None,
    now: float,
) -> Observation:
    """What status should say about ``state``. While backing off, the delay is drawn once per
    container and restart (the jitter is seeded by both) and counted from the container's exit,
    so looking again (an event, a resync) gives the same ``retry_at`` and no new status write."""
    if state is None:
        return Observation("Pending", False, codes.NO_CONTAINER, "no container yet", None, None)
    if state.running:
        return Observation("Running", True, codes.CONTAINER_RUNNING, "", state.id, None)
    if state.status not in ("exited", "dead"):
        return Observation(
            "Pending",
            False,
            codes.CONTAINER_NOT_STARTED,
            f"container is {state.status}",
            state.id,
            None,
        )

    code = state.exit_code if state.exit_code is not None else -1
    how = "was OOM-killed" if state.oom_killed else f"exited with code {code}"
    backoff = spec.backoff or Backoff()
    wants_restart = spec.restartPolicy == "Always" or (
        spec.restartPolicy == "OnFailure" and code != 0
    )
    if wants_restart and restarts < backoff.maxRetries:
        delay = restart_delay(
            restarts,
            initial=backoff.initialSeconds,
            maximum=backoff.maxSeconds,
            rng=rng or random.Random(f"{state.id}:{restarts}"),
        )
        current = now
        retry_at = exited_at(state.finished_at, current) + delay
        return Observation(
            "Running",
            False,
            codes.BACKING_OFF,
            f"the container {how}; restart {restarts + 1} of {backoff.maxRetries} after a "
            f"{delay:.0f} s backoff",
            state.id,
            code,
            restart_in=max(0.0, retry_at - current),
            retry_at=retry_at,
        )
    if wants_restart:
        reason = codes.OOM_KILLED if state.oom_killed else codes.BACKOFF_LIMIT_EXCEEDED
        return Observation(
            "Failed",
            False,
            reason,
            f"the container {how} after {restarts} restarts (backoff.maxRetries); "
            "fix the cause and update the Workload",
            state.id,
            code,
        )
    if code == 0 and not state.oom_killed:
        return Observation(
            "Succeeded", False, "Completed", "the container exited with code 0", state.id, code
        )
    reason = codes.OOM_KILLED if state.oom_killed else codes.CONTAINER_FAILED
    advice = "raise resources.limits.memory" if state.oom_killed else "check its logs"
    return Observation("Failed", False, reason, f"the container {how}; {advice}", state.id, code)


def exited_at(finished_at: str | None, now: float) -> float:
    """Docker's FinishedAt (or StartedAt) as a Unix time; ``now`` if unknown."""
    moment = parse_seconds(finished_at)
    return now if moment is None else moment
