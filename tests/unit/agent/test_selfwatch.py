"""The agent watching itself: snapshots carry the log pipeline's queue and lag, and memory
turning critical writes one crash report per episode (not one per sample, nor one per swing
around 90 %)."""

import json
from pathlib import Path

from nodekeeper.agent.recorder import FlightRecorder
from nodekeeper.agent.selfprotect import MemoryLevel, SelfMemory
from nodekeeper.agent.selfwatch import SelfWatch


class Levels:
    def __init__(self) -> None:
        self.level = MemoryLevel.NORMAL

    def read(self) -> SelfMemory:
        return SelfMemory(used_bytes=950, limit_bytes=1000, limit_source="cgroup", level=self.level)


def watch(tmp_path: Path, levels: Levels) -> SelfWatch:
    return SelfWatch(
        protection=levels,  # type: ignore[arg-type]
        recorder=FlightRecorder(),
        state_dir=tmp_path,
        pressure=lambda: {"NodekeeperCPUPressure": "False"},
        logs=lambda: {"queue_bytes": 4096.0, "lag_bytes": 123.0, "files_watched": 3.0},
    )


async def test_a_snapshot_holds_the_log_queue_and_lag(tmp_path: Path) -> None:
    watcher = watch(tmp_path, Levels())
    watcher.sample()

    (snapshot,) = watcher.recorder.snapshots()
    assert snapshot["queue_depths"] == {"log_queue_bytes": 4096}
    assert snapshot["lag_bytes"] == 123
    assert snapshot["pressure"] == {"NodekeeperCPUPressure": "False"}


async def test_critical_memory_writes_one_crash_report_when_it_is_reached(tmp_path: Path) -> None:
    levels = Levels()
    watcher = watch(tmp_path, levels)
    assert watcher.sample() is None
    levels.level = MemoryLevel.CRITICAL
    due = watcher.sample()
    assert due == "memory critical: 950 of 1000 bytes"
    assert watcher.sample() is None  # still critical: no second report
    levels.level = MemoryLevel.SLOW
    assert watcher.sample() is None
    levels.level = MemoryLevel.CRITICAL
    assert watcher.sample() is None  # hovering around 90 %: the same episode
    levels.level = MemoryLevel.NORMAL
    assert watcher.sample() is None
    levels.level = MemoryLevel.CRITICAL
    assert watcher.sample() is not None  # a new episode after a calm spell

    path = watcher.dump(due)
    assert path is not None
    report = json.loads(path.read_text())
    assert report["reason"] == due
    assert len(report["snapshots"]) == 7  # every sample so far: the minutes before it
