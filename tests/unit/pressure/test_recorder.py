"""The flight recorder keeps the last snapshots and writes them whole as a crash report."""

import datetime
import json
import os
from pathlib import Path

import pytest

from nodekeeper.pressure.recorder import FlightRecorder, Snapshot

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


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        FlightRecorder(0)
