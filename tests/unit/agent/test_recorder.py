"""The flight recorder keeps the last snapshots and writes them whole as a crash report."""

import asyncio
import datetime
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from nodekeeper.agent.recorder import FlightRecorder, Snapshot

MOMENT = datetime.datetime(2026, 5, 9, 7, 35, 25, 123456, tzinfo=datetime.UTC)


def recorder(capacity: int) -> FlightRecorder:
    return FlightRecorder(capacity, now=lambda: MOMENT)


def test_the_ring_keeps_only_the_latest_snapshots() -> None:
    flight = recorder(3)
    for second in range(5):
        flight.record(Snapshot(time=float(second), tasks=second))

    assert len(flight) == 3
    assert [s["time"] for s in flight.snapshots()] == [2.0, 3.0, 4.0]


def test_a_dump_is_a_json_crash_report_named_by_utc_time(tmp_path: Path) -> None:
    flight = recorder(10)
    flight.record(
        Snapshot(
            time=1.0,
            queue_depths={"logs": 12, "status": 0},
            lag_bytes=4096,
            memory_bytes=200 * 2**20,
            tasks=17,
            pressure={"NodekeeperCPUPressure": "True"},
        )
    )
    flight.record({"time": 2.0, "tasks": 18})

    path = flight.dump(tmp_path / "state", reason="memory CRITICAL: 91% of 256 MiB")

    assert path == tmp_path / "state" / "crash-20260509T073525.123456Z.json"
    report = json.loads(path.read_text())
    assert report["reason"] == "memory CRITICAL: 91% of 256 MiB"
    assert report["written_at"] == "2026-05-09T07:35:25.123456Z"
    assert report["pid"] == os.getpid()
    assert report["snapshots"] == [
        {
            "time": 1.0,
            "queue_depths": {"logs": 12, "status": 0},
            "lag_bytes": 4096,
            "memory_bytes": 200 * 2**20,
            "tasks": 17,
            "pressure": {"NodekeeperCPUPressure": "True"},
        },
        {"time": 2.0, "tasks": 18},
    ]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left


def test_a_failed_dump_leaves_no_partial_file(tmp_path: Path) -> None:
    flight = recorder(2)
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    flight.record({"time": 1.0, "cycle": cyclic})

    with pytest.raises(ValueError, match="Circular"):
        flight.dump(tmp_path, reason="boom")
    assert list(tmp_path.iterdir()) == []


async def test_an_async_dump_writes_the_same_report(tmp_path: Path) -> None:
    flight = recorder(4)
    flight.record(Snapshot(time=1.0, queue_depths={"logs": 3}, tasks=9))

    written = await flight.dump_async(tmp_path / "async", reason="SIGUSR1")

    expected = flight.dump(tmp_path / "sync", reason="SIGUSR1")
    assert written.name == expected.name == "crash-20260509T073525.123456Z.json"
    assert json.loads(written.read_text()) == json.loads(expected.read_text())
    assert [p.name for p in written.parent.iterdir()] == [written.name]


def only_report(folder: Path) -> dict[str, object]:
    [path] = folder.iterdir()  # and no temporary
    report: dict[str, object] = json.loads(path.read_text())
    return report


class HeldSync:
    """os.fsync that holds until released, so a test sees what runs while a report syncs."""

    def __init__(self, real: Callable[[int], None]) -> None:
        self.real = real
        self.syncing = threading.Event()  # the first fsync (the file's) has begun
        self.released = threading.Event()
        self.done = threading.Event()  # the last fsync (the directory's) has ended
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self.syncing.set()
        assert self.released.wait(timeout=5), "held: the event loop did not run meanwhile"
        self.real(fd)
        if self.calls == 2:
            self.done.set()


async def test_an_async_dump_leaves_the_loop_running_while_it_syncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldSync(os.fsync)
    monkeypatch.setattr(os, "fsync", held)
    flight = recorder(2)
    flight.record({"time": 1.0})

    dumping = asyncio.create_task(flight.dump_async(tmp_path, reason="SIGUSR1"))
    assert await asyncio.to_thread(held.syncing.wait, 5)
    flight.record({"time": 2.0})  # the loop runs on: the agent keeps working
    held.released.set()
    path = await dumping

    assert json.loads(path.read_text())["snapshots"] == [{"time": 1.0}]  # taken at the call


async def test_a_cancelled_async_dump_still_writes_a_whole_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldSync(os.fsync)
    monkeypatch.setattr(os, "fsync", held)
    flight = recorder(2)
    flight.record({"time": 1.0})

    dumping = asyncio.create_task(flight.dump_async(tmp_path, reason="stopping"))
    assert await asyncio.to_thread(held.syncing.wait, 5)
    dumping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await dumping
    held.released.set()
    assert await asyncio.to_thread(held.done.wait, 5)

    assert only_report(tmp_path)["reason"] == "stopping"


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        FlightRecorder(0)


def test_only_the_newest_reports_are_kept(tmp_path: Path) -> None:
    moments = iter(MOMENT + datetime.timedelta(seconds=n) for n in range(5))
    flight = FlightRecorder(4, keep=3, now=lambda: next(moments))
    written = [flight.dump(tmp_path, reason) for reason in ("1st", "2nd", "3rd", "4th", "5th")]

    assert sorted(tmp_path.glob("crash-*.json")) == written[2:]
    assert [json.loads(path.read_text())["reason"] for path in written[2:]] == [
        "3rd",
        "4th",
        "5th",
    ]
