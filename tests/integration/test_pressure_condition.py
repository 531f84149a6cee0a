"""Real CPU pressure, seen as a condition transition through the PSI trigger path.

More busy processes than cores raise real CPU PSI on this machine; the sampler, woken by a real
trigger on /proc/pressure/cpu, reports NodekeeperCPUPressure=True with the figures.
"""

import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from nodekeeper.pressure.psi import PsiReader
from nodekeeper.pressure.sampler import PressureSampler
from nodekeeper.pressure.thresholds import PressureTracker, Threshold, Transition
from nodekeeper.pressure.triggers import open_trigger


async def test_cpu_pressure_becomes_a_condition_through_the_trigger() -> None:
    psi = PsiReader(Path("/proc/pressure"))
    threshold = Threshold(enter_ratio=0.20, exit_ratio=0.10, sustain_seconds=2)
    tracker = PressureTracker({"cpu": threshold, "memory": threshold, "io": threshold})
    # A long periodic interval: the trigger, not the timer, is what wakes the sampler early.
    sampler = PressureSampler(psi, tracker, interval_seconds=30)
    seen: asyncio.Queue[Transition] = asyncio.Queue()

    async def collect(transitions: Sequence[Transition]) -> None:
        for transition in transitions:
            seen.put_nowait(transition)

    trigger = open_trigger(Path("/proc/pressure/cpu"), stall_us=100_000, window_us=1_000_000)
    busy = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", "while True: pass")
        for _ in range(3 * (os.cpu_count() or 1))
    ]
    task = asyncio.create_task(sampler.run(collect, wakeups=[trigger]))
    try:
        async with asyncio.timeout(90):
            while True:
                transition = await seen.get()
                current = transition.current
                if (current.type, current.status) == ("NodekeeperCPUPressure", "True"):
                    break
        assert transition.current.reason == "CPUPressure"
        assert ">= 20.0%" in transition.current.message
        assert sampler.wakeups_fired >= 1
        print(f"trigger wakeups: {sampler.wakeups_fired}, samples: {sampler.samples}")
    finally:
        for process in busy:
            process.kill()
            await process.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        trigger.close()
