"""Memory and IO transitions driven by the real readers, from pressure files rewritten over time.

Real memory pressure cannot be raised on the test machines (no swap; a big allocation is
OOM-killed), so the whole path the agent runs (PsiReader on a /proc root, the sampler's loop,
the tracker's sustain and hysteresis) is driven here by rewriting ``<proc>/pressure/memory``
and ``<proc>/pressure/io`` as the kernel would, in loop time.
"""

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from nodekeeper.pressure.psi import PsiReader, Resource
from nodekeeper.pressure.sampler import PressureSampler
from nodekeeper.pressure.thresholds import PressureTracker, Threshold, Transition

MEMORY, IO = "NodekeeperMemoryPressure", "NodekeeperIOPressure"
CALM = "some avg10=1.00 avg60=0.50 avg300=0.20 total=1000\nfull avg10=0.00 avg60=0.00 "
CALM += "avg300=0.00 total=0\n"


def stalled(avg10: float) -> str:
    """A pressure file whose ``some avg10`` is ``avg10`` per cent."""
    return (
        f"some avg10={avg10:.2f} avg60=20.00 avg300=5.00 total=90000000\n"
        "full avg10=10.00 avg60=5.00 avg300=1.00 total=30000000\n"
    )


class Proc:
    """A /proc root whose pressure files the test rewrites, as the kernel updates them."""

    def __init__(self, root: Path) -> None:
        self.pressure = root / "pressure"
        self.pressure.mkdir(parents=True)
        for resource in ("cpu", "memory", "io"):
            self.write(resource, CALM)

    def write(self, resource: Resource, text: str) -> None:
        (self.pressure / resource).write_text(text)


class Seen:
    def __init__(self) -> None:
        self.transitions: list[tuple[float, Transition]] = []
        self.changed = asyncio.Event()

    async def __call__(self, transitions: Sequence[Transition]) -> None:
        now = asyncio.get_running_loop().time()
        self.transitions.extend((now, t) for t in transitions)
        self.changed.set()

    async def until(self, condition: str, before: str, after: str) -> float:
        """Wait for ``condition`` to go from ``before`` to ``after``; when it did, in loop time."""
        while True:
            for when, t in self.transitions:
                if (t.type, t.previous.status, t.status) == (condition, before, after):
                    return when
            self.changed.clear()
            await self.changed.wait()


@pytest.mark.looptime
async def test_memory_and_io_go_true_after_the_sustain_and_false_after_calm(
    tmp_path: Path,
) -> None:
    loop = asyncio.get_running_loop()
    proc = Proc(tmp_path / "proc")
    threshold = Threshold(enter_ratio=0.10, exit_ratio=0.05, sustain_seconds=3)
    tracker = PressureTracker({"cpu": threshold, "memory": threshold, "io": threshold})
    sampler = PressureSampler(
        PsiReader(proc.pressure), tracker, interval_seconds=1, clock=loop.time
    )
    seen = Seen()
    task = asyncio.create_task(sampler.run(seen))
    try:
        async with asyncio.timeout(60):
            await asyncio.sleep(2.5)  # samples at 0, 1, 2: calm
            proc.write("memory", stalled(40.0))
            await asyncio.sleep(1)  # 3.5
            proc.write("io", stalled(25.0))
            await seen.until(MEMORY, "False", "True")
            await seen.until(IO, "False", "True")
            await asyncio.sleep(10.5 - loop.time())
            proc.write("memory", CALM)
            proc.write("io", stalled(7.0))  # below enter, above exit: still True
            await asyncio.sleep(12.5 - loop.time())
            proc.write("io", CALM)
            await seen.until(MEMORY, "True", "False")
            await seen.until(IO, "True", "False")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    first, later = seen.transitions[:3], seen.transitions[3:]
    assert [(when, t.previous.status, t.status) for when, t in first] == [
        (0, "Unknown", "False")
    ] * 3
    # Memory >= enter from the sample at 3, True once that lasted 3 s; io from 4, True at 7.
    # Memory < exit from the sample at 11, False at 14; io only from 13 (7 % lies between exit
    # and enter, where hysteresis keeps it True), False at 16.
    assert [(when, t.type, t.reason, t.message) for when, t in later] == [
        (6, MEMORY, "MemoryPressure", "memory some avg10 40.0% >= 10.0% for 3 s"),
        (7, IO, "IOPressure", "io some avg10 25.0% >= 10.0% for 3 s"),
        (14, MEMORY, "NoMemoryPressure", "memory some avg10 1.0% < 5.0% for 3 s"),
        (16, IO, "NoIOPressure", "io some avg10 1.0% < 5.0% for 3 s"),
    ]
    assert tracker.state("cpu").status == "False"  # cpu stayed calm throughout
