"""The pressure sampler: the one loop that turns PSI into condition transitions.

It samples every ``interval_seconds``, and at once when a PSI trigger fires or when a pending
transition becomes due (:meth:`PressureTracker.next_due`). A trigger therefore shortens
detection from "up to an interval late" to "as soon as the kernel saw the stall", while the
sustain rule of :mod:`nodekeeper.pressure.thresholds` still decides every transition.
Transitions go to one callback (Node status patch, metrics); the sampler knows nothing of the
API. A trigger whose cgroup vanished (:class:`TriggerClosed`) is dropped and the loop carries on
with periodic sampling.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from nodekeeper.pressure.psi import PsiSource
from nodekeeper.pressure.thresholds import PressureTracker, Transition
from nodekeeper.pressure.triggers import TriggerClosed

logger = logging.getLogger(__name__)

TransitionSink = Callable[[Sequence[Transition]], Awaitable[None]]

# After a trigger fires: sample every BURST_INTERVAL_SECONDS for BURST_SECONDS.
BURST_SECONDS = 10.0
BURST_INTERVAL_SECONDS = 0.5


class Wakeup(Protocol):
    """Something that says "look now": a :class:`~nodekeeper.pressure.triggers.PsiTrigger`."""

    async def wait(self) -> None: ...


class PressureSampler:
    def __init__(
        self,
        source: PsiSource,
        tracker: PressureTracker,
        *,
        interval_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError(f"interval_seconds {interval_seconds} must be positive")
        self.source = source
        self.tracker = tracker
        self.interval_seconds = interval_seconds
        self.samples = 0
        self.wakeups_fired = 0
        self._fired_at: float | None = None
        self._clock = clock

    def evaluate(self) -> list[Transition]:
        """Sample now; what a fired trigger causes."""
        self.samples += 1
        return self.tracker.evaluate(self.source, self._clock())

    async def run(self, on_transitions: TransitionSink, wakeups: Sequence[Wakeup] = ()) -> None:
        """Sample until cancelled, passing every batch of transitions to ``on_transitions``."""
        waiting: dict[asyncio.Task[None], Wakeup] = {}
        armed = list(wakeups)
        try:
            while True:
                transitions = self.evaluate()
                if transitions:
                    await on_transitions(transitions)
                for wakeup in armed:
                    waiting[asyncio.create_task(wakeup.wait(), name="pressure-wakeup")] = wakeup
                armed = []
                if not waiting:
                    await asyncio.sleep(self._delay())
                    continue
                done, _ = await asyncio.wait(
                    waiting, timeout=self._delay(), return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    wakeup = waiting.pop(task)
                    error = task.exception()
                    if isinstance(error, TriggerClosed):
                        logger.info(
                            "pressure trigger closed; sampling periodically",
                            extra={"error": str(error)},
                        )
                    elif error is not None:
                        raise error
                    else:
                        self.wakeups_fired += 1
                        self._fired_at = self._clock()
                        armed.append(wakeup)
        finally:
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)

    def _delay(self) -> float:
        now = self._clock()
        interval = self.interval_seconds
        # A trigger fires at most once per window; right after one, the running averages are
        # still climbing, so look often until the burst is over instead of waiting a full
        # interval (or the next window) to see them cross the threshold.
        if self._fired_at is not None and now - self._fired_at < BURST_SECONDS:
            interval = min(interval, BURST_INTERVAL_SECONDS)
        due = self.tracker.next_due(now)
        if due is None:
            return interval
        return max(0.0, min(interval, due - now))
