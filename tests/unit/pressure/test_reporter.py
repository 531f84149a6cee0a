"""Node pressure reported: one patch with all three conditions, an Event per transition (the
first sample's too, as the kubelet posts on start), and a heartbeat that re-sends them.

The Node writer and the Event poster are fakes behind their seams; the real patch is proven on
the real API server in e2e/tests/test_node_conditions.py.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from nodekeeper.kube.nodes import NodeCondition
from nodekeeper.pressure.psi import PsiReader
from nodekeeper.pressure.reporter import NodePressure
from nodekeeper.pressure.sampler import PressureSampler
from nodekeeper.pressure.thresholds import PressureTracker, Threshold, every_resource

TYPES = {"NodekeeperCPUPressure", "NodekeeperMemoryPressure", "NodekeeperIOPressure"}


def psi(some_avg10: float) -> str:
    return (
        f"some avg10={some_avg10:.2f} avg60=0.00 avg300=0.00 total=0\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    )


class Seen:
    """Every patch (what the API server would hold) and every Event, in order."""

    def __init__(self) -> None:
        self.patches: list[list[NodeCondition]] = []
        self.posted: list[tuple[str, str, str]] = []
        self._changed = asyncio.Condition()

    async def patch(self, conditions: list[NodeCondition], **_: Any) -> None:
        self.patches.append(list(conditions))
        async with self._changed:
            self._changed.notify_all()

    async def post(self, *, type: str, reason: str, message: str, **_: Any) -> None:
        self.posted.append((type, reason, message))
        async with self._changed:
            self._changed.notify_all()

    async def until(self, check: Callable[[], bool]) -> None:
        async with asyncio.timeout(30), self._changed:  # a hang guard only
            await self._changed.wait_for(check)


@pytest.fixture
def pressure_dir(tmp_path: Path) -> Path:
    for resource in ("cpu", "memory", "io"):
        (tmp_path / resource).write_text(psi(0.0))
    return tmp_path


@contextlib.asynccontextmanager
async def reporting(pressure_dir: Path, heartbeat: float) -> AsyncIterator[Seen]:
    """The reporter running on ``pressure_dir``; what it patched and posted."""
    seen = Seen()
    tracker = PressureTracker(every_resource(Threshold(0.5, 0.2, sustain_seconds=0)))
    reporter = NodePressure(
        sampler=PressureSampler(PsiReader(pressure_dir), tracker, interval_seconds=0.05),
        tracker=tracker,
        writer=seen,  # type: ignore[arg-type]
        events=seen,  # type: ignore[arg-type]
        heartbeat_seconds=heartbeat,
        pressure_root=pressure_dir,
        trigger_stall_us=0,  # files in tmp have no triggers
        trigger_window_us=0,
    )
    task = asyncio.create_task(reporter.run())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_first_sample_is_patched_and_announced_with_an_event_per_condition(
    pressure_dir: Path,
) -> None:
    async with reporting(pressure_dir, heartbeat=60) as seen:
        await seen.until(lambda: len(seen.posted) >= 3)
    first = seen.patches[0]
    assert {c.type for c in first} == TYPES
    assert {c.status for c in first} == {"False"}
    assert sorted(seen.posted)[0][:2] == ("Normal", "NoCPUPressure")
    assert {reason for _, reason, _ in seen.posted} == {
        "NoCPUPressure",
        "NoMemoryPressure",
        "NoIOPressure",
    }


async def test_pressure_becomes_a_warning_event_and_a_patch_with_the_figures(
    pressure_dir: Path,
) -> None:
    async with reporting(pressure_dir, heartbeat=60) as seen:
        await seen.until(lambda: len(seen.posted) >= 3)
        (pressure_dir / "memory").write_text(psi(93.0))
        await seen.until(lambda: any(t == "Warning" for t, _, _ in seen.posted))
        (pressure_dir / "memory").write_text(psi(1.0))
        await seen.until(lambda: len(seen.posted) >= 5)
    warning = next(e for e in seen.posted if e[0] == "Warning")
    assert warning[1] == "MemoryPressure"
    assert warning[2].startswith("NodekeeperMemoryPressure=True")
    assert "0.93" in warning[2] or "93" in warning[2]
    patched = [
        c.status for patch in seen.patches for c in patch if c.type == "NodekeeperMemoryPressure"
    ]
    assert "True" in patched
    assert patched[-1] == "False"
    assert seen.posted[-1][:2] == ("Normal", "NoMemoryPressure")


async def test_the_heartbeat_resends_the_conditions_without_events(pressure_dir: Path) -> None:
    async with reporting(pressure_dir, heartbeat=0.05) as seen:
        await seen.until(lambda: len(seen.patches) >= 4)
    assert len(seen.posted) == 3  # the start-up ones only: nothing changed since
    assert all({c.type for c in patch} == TYPES for patch in seen.patches)
