"""The agent protects itself: it watches its own memory and slows its reading before the OOM killer.

An agent that is OOM-killed loses its place in every log and leaves conditions stale, so it
measures itself against its own limit: its cgroup's limit (the pod's), else a configured
fallback, else none. Levels at 70 / 85 / 90 % of the limit:

- ``WARN``: log and show in metrics;
- ``SLOW``: shrink read batches (:class:`ReadBudget`) so less is held in memory at once;
- ``CRITICAL``: the smallest batches, and the flight recorder dumps what it saw.

Nothing is dropped at any level: the budget only sizes reads, and what is not read now stays in
the file (checkpoints make that safe). The budget is AIMD, as TCP's congestion window: it grows
by a step while calm and halves under pressure, so it settles near what the limit allows.
"""

import dataclasses
import enum
import os
from collections.abc import Callable
from typing import Literal, Protocol

import psutil

from nodekeeper.pressure.cgroups import Cgroup, CgroupStats


class MemoryLevel(enum.IntEnum):
    NORMAL = 0
    WARN = 1
    SLOW = 2
    CRITICAL = 3


@dataclasses.dataclass(frozen=True)
class MemoryLevels:
    warn: float = 0.70
    slow: float = 0.85
    critical: float = 0.90

    def __post_init__(self) -> None:
        if not 0.0 < self.warn <= self.slow <= self.critical <= 1.0:
            raise ValueError(
                f"memory levels must rise within (0, 1]: {self.warn}, {self.slow}, {self.critical}"
            )

    def level(self, ratio: float | None) -> MemoryLevel:
        if ratio is None:
            return MemoryLevel.NORMAL
        if ratio >= self.critical:
            return MemoryLevel.CRITICAL
        if ratio >= self.slow:
            return MemoryLevel.SLOW
        if ratio >= self.warn:
            return MemoryLevel.WARN
        return MemoryLevel.NORMAL


@dataclasses.dataclass(frozen=True)
class SelfMemory:
    used_bytes: int
    limit_bytes: int | None
    limit_source: Literal["cgroup", "setting", "none"]
    level: MemoryLevel

    @property
    def ratio(self) -> float | None:
        return self.used_bytes / self.limit_bytes if self.limit_bytes else None


class OwnCgroup(Protocol):
    """What self-protection needs of :class:`~nodekeeper.pressure.cgroups.CgroupReader`."""

    def agent(self) -> Cgroup: ...

    def read(self, cgroup: Cgroup) -> CgroupStats: ...


def own_rss() -> int:
    return int(psutil.Process(os.getpid()).memory_info().rss)


class SelfProtection:
    def __init__(
        self,
        cgroups: OwnCgroup | None,
        *,
        fallback_limit_bytes: int | None = None,
        levels: MemoryLevels | None = None,
        rss: Callable[[], int] = own_rss,
    ) -> None:
        self.levels = levels or MemoryLevels()
        self._cgroups = cgroups
        self._fallback = fallback_limit_bytes
        self._rss = rss

    def read(self) -> SelfMemory:
        """Usage against the limit now. With a cgroup limit, usage is the cgroup's working set:
        what the kernel cannot reclaim, which is what the OOM killer and the kubelet judge."""
        stats = self._cgroups.read(self._cgroups.agent()) if self._cgroups is not None else None
        if stats is not None and stats.memory_limit_bytes is not None:
            used = stats.memory_working_set_bytes
            if used is None:
                used = stats.memory_current_bytes
            if used is None:
                used = self._rss()
            return self._measured(used, stats.memory_limit_bytes, "cgroup")
        if self._fallback is not None:
            return self._measured(self._rss(), self._fallback, "setting")
        return SelfMemory(self._rss(), None, "none", MemoryLevel.NORMAL)

    def _measured(self, used: int, limit: int, source: Literal["cgroup", "setting"]) -> SelfMemory:
        return SelfMemory(used, limit, source, self.levels.level(used / limit))


class ReadBudget:
    """How many items (lines, events) one read may take: AIMD within [minimum, maximum]."""

    def __init__(
        self,
        *,
        minimum: int = 16,
        maximum: int = 4096,
        step: int = 64,
        factor: float = 0.5,
        initial: int | None = None,
    ) -> None:
        if not 0 < minimum <= maximum or step <= 0 or not 0.0 < factor < 1.0:
            raise ValueError(
                f"need 0 < minimum <= maximum, step > 0, 0 < factor < 1; got {minimum}, "
                f"{maximum}, {step}, {factor}"
            )
        self.minimum = minimum
        self.maximum = maximum
        self.step = step
        self.factor = factor
        self._size = maximum if initial is None else min(maximum, max(minimum, initial))

    @property
    def size(self) -> int:
        return self._size

    def on_pressure(self) -> int:
        """Multiplicative decrease."""
        self._size = max(self.minimum, int(self._size * self.factor))
        return self._size

    def on_calm(self) -> int:
        """Additive increase."""
        self._size = min(self.maximum, self._size + self.step)
        return self._size

    def follow(self, level: MemoryLevel) -> int:
        """Adjust to a memory level: shrink at SLOW, floor at CRITICAL, hold at WARN, else grow."""
        if level >= MemoryLevel.CRITICAL:
            self._size = self.minimum
        elif level >= MemoryLevel.SLOW:
            self.on_pressure()
        elif level == MemoryLevel.NORMAL:
            self.on_calm()
        return self._size
