"""The agent watching itself: its memory against its limit, and the flight recorder.

Every ``interval`` it moves the log readers' budget with its memory level (smaller reads at
85 %, the smallest at 90 %, growing back when calm), records a snapshot (memory, task count,
the log pipeline's queue and lag, pressure) in the flight recorder's ring buffer, and logs when
its memory level changes (70 / 85 / 90 % of its limit). The ring buffer is written to a crash
report in the state directory on SIGUSR1, when the memory level reaches critical (90 %: the OOM
killer may be next; once until it is back under 70 %), when a part of the agent dies and on an
unhandled exception, so a report shows the minutes before a problem, not only its moment.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nodekeeper.agent.recorder import FlightRecorder, Snapshot
from nodekeeper.agent.selfprotect import MemoryLevel, ReadBudget, SelfProtection

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
        logs: Callable[[], Mapping[str, float]] = dict,  # the log pipeline's state()
    ) -> None:
        self._logs = logs
        self._budgets = budgets
        self.protection = protection
        self.recorder = recorder
        self._state_dir = state_dir
        self._pressure = pressure
        self._interval = interval_seconds
        self.level = MemoryLevel.NORMAL
        self._critical_reported = False

    def sample(self) -> str | None:
        """Take a snapshot; returns why a crash report is due now (memory turned critical)."""
        memory = self.protection.read()
        for budget in self._budgets:
            budget.follow(memory.level)
        logs = self._logs()
        self.recorder.record(
            Snapshot(
                time=time.time(),
                queue_depths={"log_queue_bytes": int(logs.get("queue_bytes", 0))},
                lag_bytes=int(logs.get("lag_bytes", 0)),
                memory_bytes=memory.used_bytes,
                tasks=len(asyncio.all_tasks()),
                pressure=dict(self._pressure()),
            )
        )
        due = None
        # Once per episode: memory hovering around 90 % (reads shrink, memory falls, reads grow)
        # must not write a report per swing; it re-arms once memory is back under 70 %.
        if memory.level >= MemoryLevel.CRITICAL and not self._critical_reported:
            due = f"memory critical: {memory.used_bytes} of {memory.limit_bytes} bytes"
            self._critical_reported = True
        elif memory.level == MemoryLevel.NORMAL:
            self._critical_reported = False
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
        return due

    def dump(self, reason: str) -> Path | None:
        try:
            path = self.recorder.dump(self._state_dir, reason)
        except OSError as e:
            logger.error("could not write the crash report", extra={"error": str(e)})
            return None
        logger.warning("crash report written", extra={"path": str(path), "reason": reason})
        return path

    async def dump_async(self, reason: str) -> Path | None:
        """:meth:`dump` with the file write off the event loop, for an agent that goes on."""
        try:
            path = await self.recorder.dump_async(self._state_dir, reason)
        except OSError as e:
            logger.error("could not write the crash report", extra={"error": str(e)})
            return None
        logger.warning("crash report written", extra={"path": str(path), "reason": reason})
        return path

    async def run(self) -> None:
        while True:
            due = self.sample()
            if due is not None:
                await self.dump_async(due)
            await asyncio.sleep(self._interval)
