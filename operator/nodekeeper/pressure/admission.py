"""The admission gate: whether this node takes a new Workload now, and if not, why.

Two reasons to refuse, checked in this order:

- ``NodeUnderPressure``: a pressure condition is ``True`` (sustained PSI above its threshold);
  starting more work would deepen the stall for everything already running;
- ``InsufficientResources``: memory, CPU or the Docker disk is used beyond its limit
  (default 80 %), even if nothing stalls yet.

A condition that is ``Unknown`` (no PSI on this kernel) does not refuse: a node without PSI
would otherwise never run anything; the totals still guard it. The refusal carries a stable
code and a message with the figures and what to do, ready for ``status.errorCode``/``message``.
"""

import dataclasses
from collections.abc import Iterable
from typing import Literal, Protocol

from nodekeeper.api.codes import INSUFFICIENT_RESOURCES, NODE_UNDER_PRESSURE
from nodekeeper.pressure.thresholds import ConditionState
from nodekeeper.pressure.totals import NodeTotals

RefusalCode = Literal["NodeUnderPressure", "InsufficientResources"]


@dataclasses.dataclass(frozen=True)
class AdmissionLimits:
    memory_used_ratio: float = 0.80
    cpu_used_ratio: float = 0.80
    disk_used_ratio: float = 0.80

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"admission limit {field.name}={value} must be in (0, 1]")


@dataclasses.dataclass(frozen=True)
class Refusal:
    code: RefusalCode
    message: str


class ConditionSource(Protocol):
    def states(self) -> Iterable[ConditionState]: ...


class TotalsSource(Protocol):
    def read(self) -> NodeTotals: ...


class AdmissionGate:
    def __init__(
        self,
        conditions: ConditionSource,
        totals: TotalsSource,
        limits: AdmissionLimits | None = None,
    ) -> None:
        self.limits = limits or AdmissionLimits()
        self._conditions = conditions
        self._totals = totals

    def check(self) -> Refusal | None:
        """``None`` to admit, or why not."""
        return decide(self._conditions.states(), self._totals.read(), self.limits)


def decide(
    states: Iterable[ConditionState], totals: NodeTotals, limits: AdmissionLimits
) -> Refusal | None:
    pressing = [state for state in states if state.status == "True"]
    if pressing:
        figures = "; ".join(f"{state.type}: {state.message}" for state in pressing)
        return Refusal(
            NODE_UNDER_PRESSURE,
            f"node is under sustained pressure ({figures}); the Workload starts when the "
            "pressure ends, or assign it to another node (spec.nodeName)",
        )
    over = []
    for name, used, limit in (
        ("memory", totals.memory_used_ratio, limits.memory_used_ratio),
        ("CPU", totals.cpu_used_ratio, limits.cpu_used_ratio),
        (f"disk {totals.disk_path}", totals.disk_used_ratio, limits.disk_used_ratio),
    ):
        if used is not None and limit < 1.0 and used >= limit:  # a limit of 1 turns it off
            over.append(f"{name} is {used:.1%} used (limit {limit:.1%})")
    if over:
        return Refusal(
            INSUFFICIENT_RESOURCES,
            f"node has too little room: {'; '.join(over)}; free resources on the node or "
            "assign the Workload to another node (spec.nodeName)",
        )
    return None
