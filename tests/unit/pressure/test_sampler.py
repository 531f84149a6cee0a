"""The sampler: periodic samples, an early one when a trigger fires, the sustain rule kept."""

import asyncio
from collections.abc import Sequence

import pytest

from nodekeeper.pressure.psi import PsiLine, PsiSample, Resource
from nodekeeper.pressure.sampler import PressureSampler
from nodekeeper.pressure.thresholds import PressureTracker, Threshold, Transition
from nodekeeper.pressure.triggers import TriggerClosed


class StallFrom:
    """cpu PSI that is 0 before ``onset`` (loop time) and 50 % from then on."""

    def __init__(self, onset: float) -> None:
        self.onset = onset

    def read(self, resource: Resource) -> PsiSample | None:
        now = asyncio.get_running_loop().time()
        ratio = 0.5 if resource == "cpu" and now >= self.onset else 0.0
        return PsiSample(PsiLine(ratio, 0.0, 0.0, 0.0), None)


class Bell:
    """A wakeup the test rings, as the kernel fires a PSI trigger."""

    def __init__(self) -> None:
        self._rung = asyncio.Event()
        self.closed = False

    def ring(self) -> None:
        self._rung.set()

    async def wait(self) -> None:
        await self._rung.wait()
        self._rung.clear()
        if self.closed:
            raise TriggerClosed("cgroup removed")


class Collector:
    def __init__(self) -> None:
        self.seen: list[tuple[float, str, str]] = []
        self.pressure = asyncio.Event()

    async def __call__(self, transitions: Sequence[Transition]) -> None:
        now = asyncio.get_running_loop().time()
        for t in transitions:
            self.seen.append((now, t.type, t.status))
            if t.status == "True":
                self.pressure.set()


async def pressure_reported(onset: float, ring_at: float | None = None) -> Collector:
    loop = asyncio.get_running_loop()
    tracker = PressureTracker({"cpu": Threshold(0.10, 0.05, sustain_seconds=10)})
    sampler = PressureSampler(StallFrom(onset), tracker, interval_seconds=5, clock=loop.time)
    bell = Bell()
    if ring_at is not None:
        loop.call_at(ring_at, bell.ring)
    collector = Collector()
    task = asyncio.create_task(sampler.run(collector, [bell]))
    try:
        async with asyncio.timeout(60):
            await collector.pressure.wait()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return collector


@pytest.mark.looptime
async def test_without_a_trigger_pressure_is_seen_at_the_next_periodic_sample() -> None:
    collector = await pressure_reported(onset=3)

    # Samples at 0 and 5 (first one >= enter), True at 5 + 10 s.
    assert collector.seen[-1] == (15, "NodekeeperCPUPressure", "True")


@pytest.mark.looptime
async def test_a_trigger_starts_the_sustain_clock_at_once_and_the_due_time_ends_it() -> None:
    collector = await pressure_reported(onset=3, ring_at=3)

    assert collector.seen[0][0] == 0
    assert collector.seen[-1] == (13, "NodekeeperCPUPressure", "True")


@pytest.mark.looptime
async def test_a_trigger_alone_never_flips_a_condition() -> None:
    loop = asyncio.get_running_loop()
    tracker = PressureTracker({"cpu": Threshold(0.10, 0.05, sustain_seconds=10)})
    sampler = PressureSampler(StallFrom(onset=3), tracker, interval_seconds=5, clock=loop.time)
    bell = Bell()
    collector = Collector()
    task = asyncio.create_task(sampler.run(collector, [bell]))
    try:
        async with asyncio.timeout(10):
            await asyncio.sleep(3)  # virtual time: the stall begins
            bell.ring()
            await asyncio.sleep(0.9)  # after a ring, a sample every 0.5 s: at 3 and 3.5
        assert (sampler.wakeups_fired, sampler.samples) == (1, 3)
        assert tracker.state("cpu").status == "False"
        assert tracker.state("cpu").ratio == 0.5
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.looptime
async def test_a_closed_trigger_is_dropped_and_sampling_goes_on() -> None:
    loop = asyncio.get_running_loop()
    tracker = PressureTracker()
    sampler = PressureSampler(StallFrom(onset=1e9), tracker, interval_seconds=5, clock=loop.time)
    bell = Bell()
    bell.closed = True
    bell.ring()
    task = asyncio.create_task(sampler.run(Collector(), [bell]))
    try:
        async with asyncio.timeout(30):
            await asyncio.sleep(21)  # virtual time: samples at 0, 5, 10, 15, 20
        assert sampler.wakeups_fired == 0
        assert sampler.samples >= 5
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_seconds"):
        PressureSampler(StallFrom(0), PressureTracker(), interval_seconds=0)


@pytest.mark.looptime
async def test_after_a_trigger_the_crossing_is_seen_within_half_a_second() -> None:
    loop = asyncio.get_running_loop()
    tracker = PressureTracker({"cpu": Threshold(0.10, 0.05, sustain_seconds=2)})
    sampler = PressureSampler(StallFrom(onset=3), tracker, interval_seconds=30, clock=loop.time)
    bell = Bell()
    collector = Collector()
    task = asyncio.create_task(sampler.run(collector, [bell]))
    try:
        async with asyncio.timeout(60):
            await asyncio.sleep(2.9)  # virtual time: the trigger rings just before the onset
            bell.ring()
            await asyncio.sleep(3)
        # Crossing seen at 3.0 (within 0.5 s of the ring), True at 3.0 + 2 s sustain.
        assert tracker.state("cpu").status == "True"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
