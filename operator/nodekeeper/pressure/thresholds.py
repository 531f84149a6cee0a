"""From PSI samples to Node conditions: sustained pressure only, with hysteresis.

PSI moves quickly: a compile or a page-cache flush can push ``avg10`` over any threshold for a
few seconds. A condition that followed it would flap, and every flap is a Node status write,
an Event and an admission decision. So, per resource:

- ``True`` only after the signal stayed ``>= enter_ratio`` for ``sustain_seconds``;
- back to ``False`` only after it stayed ``< exit_ratio`` (lower: hysteresis) as long;
- ``Unknown`` (reason ``PSIUnavailable``) at once when there is no PSI to judge by.

An agent that just started reports ``False`` on its first sample, whatever the figure: the
condition means *sustained* pressure, which no agent can have observed yet. When the first
sample is already high, the sustain clock starts there.

Time is passed in (``now``, any monotonic clock in seconds), so the rules are tested with
explicit instants. A PSI trigger firing only makes the sampler call :meth:`PressureTracker.evaluate`
sooner; the sustain rule still holds, so a single burst that fires a trigger never flips a
condition by itself. :meth:`PressureTracker.next_due` tells the sampler when a pending
transition could complete, so ``True`` is reported ``sustain_seconds`` after onset, not up to
an interval later.
"""

import dataclasses
from collections.abc import Mapping
from typing import Literal

from nodekeeper.api.codes import (
    NODE_CONDITION_TYPES,
    NOT_YET_SAMPLED,
    PSI_UNAVAILABLE,
    calm_reason,
    pressure_reason,
)
from nodekeeper.api.conditions import ConditionStatus
from nodekeeper.pressure.psi import RESOURCES, PsiSample, PsiSource, Resource

CONDITION_TYPES: Mapping[str, str] = NODE_CONDITION_TYPES


@dataclasses.dataclass(frozen=True)
class Threshold:
    """When one resource counts as under pressure."""

    enter_ratio: float = 0.10
    exit_ratio: float = 0.05
    sustain_seconds: float = 10.0
    line: Literal["some", "full"] = "some"
    average: Literal["avg10", "avg60", "avg300"] = "avg10"

    def __post_init__(self) -> None:
        if not 0.0 < self.enter_ratio <= 1.0:
            raise ValueError(f"enter_ratio {self.enter_ratio} must be in (0, 1]")
        if not 0.0 <= self.exit_ratio <= self.enter_ratio:
            raise ValueError(
                f"exit_ratio {self.exit_ratio} must be in [0, enter_ratio={self.enter_ratio}]"
            )
        if self.sustain_seconds < 0:
            raise ValueError(f"sustain_seconds {self.sustain_seconds} must not be negative")

    def signal(self, sample: PsiSample) -> float | None:
        line = sample.some if self.line == "some" else sample.full
        return getattr(line, self.average) if line is not None else None

    def figure(self, resource: Resource) -> str:
        return f"{resource} {self.line} {self.average}"


def every_resource(threshold: Threshold) -> dict[Resource, Threshold]:
    """The same threshold for CPU, memory and IO, as the pressure_* settings give it."""
    return {resource: threshold for resource in RESOURCES}


@dataclasses.dataclass(frozen=True)
class ConditionState:
    """One Node condition as it stands; ``since`` is when its status last changed."""

    resource: Resource
    type: str
    status: ConditionStatus
    reason: str
    message: str
    since: float | None = None
    ratio: float | None = None  # the signal at the last evaluation


@dataclasses.dataclass(frozen=True)
class Transition:
    """A change of a condition's status or reason: what the Node status patch carries."""

    previous: ConditionState
    current: ConditionState

    @property
    def resource(self) -> Resource:
        return self.current.resource

    @property
    def type(self) -> str:
        return self.current.type

    @property
    def status(self) -> ConditionStatus:
        return self.current.status

    @property
    def reason(self) -> str:
        return self.current.reason

    @property
    def message(self) -> str:
        return self.current.message


@dataclasses.dataclass
class _Clock:
    """Mutable per-resource bookkeeping; never leaves the tracker."""

    state: ConditionState
    above_since: float | None = None  # first of an unbroken run of samples >= enter
    below_since: float | None = None  # first of an unbroken run of samples < exit


class PressureTracker:
    """The sustain + hysteresis state machine for cpu, memory and io."""

    def __init__(self, thresholds: Mapping[Resource, Threshold] | None = None) -> None:
        self.thresholds: dict[Resource, Threshold] = {r: Threshold() for r in RESOURCES}
        self.thresholds.update(thresholds or {})
        self._clocks = {
            r: _Clock(
                ConditionState(
                    resource=r,
                    type=CONDITION_TYPES[r],
                    status="Unknown",
                    reason=NOT_YET_SAMPLED,
                    message=f"{r} pressure has not been sampled yet",
                )
            )
            for r in RESOURCES
        }

    def state(self, resource: Resource) -> ConditionState:
        return self._clocks[resource].state

    def states(self) -> tuple[ConditionState, ...]:
        return tuple(clock.state for clock in self._clocks.values())

    def evaluate(self, source: PsiSource, now: float) -> list[Transition]:
        """Sample every resource now (periodically, or at once when a trigger fired)."""
        transitions = []
        for resource in RESOURCES:
            transition = self.update(resource, source.read(resource), now)
            if transition is not None:
                transitions.append(transition)
        return transitions

    def next_due(self, now: float) -> float | None:
        """The earliest instant a pending transition could complete, if any is pending."""
        due: list[float] = []
        for resource, clock in self._clocks.items():
            sustain = self.thresholds[resource].sustain_seconds
            if clock.state.status == "False" and clock.above_since is not None:
                due.append(clock.above_since + sustain)
            elif clock.state.status == "True" and clock.below_since is not None:
                due.append(clock.below_since + sustain)
        return max(now, min(due)) if due else None

    def update(self, resource: Resource, sample: PsiSample | None, now: float) -> Transition | None:
        """Feed one sample; returns the transition it caused, if any (status or reason moved)."""
        clock = self._clocks[resource]
        threshold = self.thresholds[resource]
        value = threshold.signal(sample) if sample is not None else None
        if value is None:
            clock.above_since = clock.below_since = None
            return self._move(
                clock,
                "Unknown",
                PSI_UNAVAILABLE,
                f"no PSI figures for {threshold.figure(resource)}: pressure cannot be judged "
                "(a kernel without PSI or booted with psi=0: boot with psi=1; or a pressure file "
                "that could not be parsed: the agent's log names it)",
                now,
                value,
            )
        figure = threshold.figure(resource)
        enter, leave = threshold.enter_ratio, threshold.exit_ratio
        sustain = threshold.sustain_seconds
        lasting = f"for {sustain:g} s"
        status = clock.state.status
        if status == "True":
            clock.below_since = _since(clock.below_since, now) if value < leave else None
            if clock.below_since is None or now - clock.below_since < sustain:
                self._note(clock, value)
                return None
            clock.below_since = None
            message = f"{figure} {value:.1%} < {leave:.1%} {lasting}"
            return self._move(clock, "False", calm_reason(resource), message, now, value)
        clock.above_since = _since(clock.above_since, now) if value >= enter else None
        if status == "False":
            if clock.above_since is None or now - clock.above_since < sustain:
                self._note(clock, value)
                return None
            clock.above_since = None
            message = f"{figure} {value:.1%} >= {enter:.1%} {lasting}"
            return self._move(clock, "True", pressure_reason(resource), message, now, value)
        # Unknown: the first figures since start-up, or since PSI came back.
        if value >= enter:
            message = f"{figure} {value:.1%} >= {enter:.1%}, not yet {lasting}"
        else:
            message = f"{figure} {value:.1%} < {enter:.1%}"
        return self._move(clock, "False", calm_reason(resource), message, now, value)

    @staticmethod
    def _note(clock: _Clock, value: float) -> None:
        clock.state = dataclasses.replace(clock.state, ratio=value)

    @staticmethod
    def _move(
        clock: _Clock,
        status: ConditionStatus,
        reason: str,
        message: str,
        now: float,
        value: float | None,
    ) -> Transition | None:
        before = clock.state
        if before.status == status and before.reason == reason:
            clock.state = dataclasses.replace(before, ratio=value)
            return None
        since = before.since if before.status == status else now
        clock.state = ConditionState(
            resource=before.resource,
            type=before.type,
            status=status,
            reason=reason,
            message=message,
            since=since,
            ratio=value,
        )
        return Transition(previous=before, current=clock.state)


def _since(started: float | None, now: float) -> float:
    return now if started is None else started


def instant_states(
    samples: Mapping[Resource, PsiSample | None], thresholds: Mapping[Resource, Threshold]
) -> tuple[ConditionState, ...]:
    """What each condition would be at these figures alone, with no history: for a human
    asking now (``nodekeeper pressure``), not for the Node, which only the tracker writes.

    Without history there is no sustain window and no hysteresis: ``True`` means the figure is
    at or above enter now (the agent would say so once it lasted ``sustain_seconds``); between
    exit and enter a condition that is already True stays True, which the message says.
    """
    states = []
    for resource in RESOURCES:
        threshold = thresholds.get(resource, Threshold())
        sample = samples.get(resource)
        value = threshold.signal(sample) if sample is not None else None
        figure = threshold.figure(resource)
        enter, leave = threshold.enter_ratio, threshold.exit_ratio
        lasting = f"{threshold.sustain_seconds:g} s"
        status: ConditionStatus
        if value is None:
            status, reason = "Unknown", PSI_UNAVAILABLE
            message = f"no PSI figures for {figure}: pressure cannot be judged"
        elif value >= enter:
            status, reason = "True", pressure_reason(resource)
            message = (
                f"{figure} {value:.1%} >= {enter:.1%}: would be True at these figures, "
                f"once they last {lasting}"
            )
        elif value >= leave:
            status, reason = "False", calm_reason(resource)
            message = (
                f"{figure} {value:.1%} < {enter:.1%}: would be False at these figures; "
                f"one already True stays so until below {leave:.1%} for {lasting}"
            )
        else:
            status, reason = "False", calm_reason(resource)
            message = f"{figure} {value:.1%} < {leave:.1%}: would be False at these figures"
        states.append(
            ConditionState(
                resource=resource,
                type=CONDITION_TYPES[resource],
                status=status,
                reason=reason,
                message=message,
                ratio=value,
            )
        )
    return tuple(states)
