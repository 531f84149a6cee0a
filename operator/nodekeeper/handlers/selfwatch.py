"""The agent watching itself: its memory against its limit, and the flight recorder.

Every ``interval`` it moves the log readers' budget with its memory level (smaller reads at
85 %, the smallest at 90 %, growing back when calm), records a snapshot (memory, task count,
pressure) in the flight recorder's ring buffer, and logs when its memory level changes (70 / 85
/ 90 % of its limit). The ring buffer is written to a crash report in the state directory on
SIGUSR1 and on an unhandled exception, so a report shows the minutes before a problem, not only
its moment.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nodekeeper.pressure.recorder import FlightRecorder, Snapshot
from nodekeeper.pressure.selfprotect import MemoryLevel, ReadBudget, SelfProtection

logger = logging.getLogger(__name__)


class SelfWatch:
    def __init__(
        self,
        *,
        protection: SelfProtection,
        recorder: FlightRecorder,
        state_dir: Path,
        pressure: Callable[[], Mapping[str, Any]],
        interval_seconds: float = 10.0,
        budgets: Sequence[ReadBudget] = (),  # readers that slow down as memory runs short
    ) -> None:
        self._budgets = budgets
        self.protection = protection
        self.recorder = recorder
        self._state_dir = state_dir
        self._pressure = pressure
        self._interval = interval_seconds
        self.level = MemoryLevel.NORMAL

    def sample(self) -> None:
        memory = self.protection.read()
        for budget in self._budgets:
            budget.follow(memory.level)
        self.recorder.record(
            Snapshot(
                time=time.time(),
                memory_bytes=memory.used_bytes,
                tasks=len(asyncio.all_tasks()),
                pressure=dict(self._pressure()),
            )
        )
        if memory.level != self.level:
            log = logger.warning if memory.level > self.level else logger.info
            log(
                "agent memory level changed",
                extra={
                    "level": memory.level.name.lower(),
                    "used_bytes": memory.used_bytes,
                    "limit_bytes": memory.limit_bytes,
                },
            )
            self.level = memory.level

    def dump(self, reason: str) -> Path | None:
        try:
            path = self.recorder.dump(self._state_dir, reason)
        except OSError as e:
            logger.error("could not write the crash report", extra={"error": str(e)})
            return None
        logger.warning("crash report written", extra={"path": str(path), "reason": reason})
        return path

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self._interval)
