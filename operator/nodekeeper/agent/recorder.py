"""The flight recorder: the agent's last minutes, written to disk when it is about to go down.

A crash or an OOM kill leaves little behind; the recorder keeps the last ``capacity`` periodic
snapshots (queue depths, lag, memory, task count, pressure) in a ring buffer, and
:meth:`FlightRecorder.dump` writes them as one JSON crash report when the agent reaches
CRITICAL memory, fails a root task, or is told to. The write is atomic (a temporary file in the
same directory, fsync, rename), so a report is whole or absent, never half-written.

Two fsyncs can take a long time on a busy disk, so on the event loop (SIGUSR1, a failed root
task) :meth:`FlightRecorder.dump_async` is used: it takes the report on the loop and writes it in
a thread. :meth:`FlightRecorder.dump` writes in the caller's thread, for where no loop runs (an
unhandled exception on the way out).
"""

import asyncio
import collections
import dataclasses
import datetime
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class Snapshot:
    time: float  # Unix seconds
    queue_depths: Mapping[str, int] = dataclasses.field(default_factory=dict)
    lag_bytes: int | None = None  # written by Docker, not yet stored (the log pipeline)
    memory_bytes: int | None = None
    tasks: int | None = None
    pressure: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "queue_depths": dict(self.queue_depths),
            "lag_bytes": self.lag_bytes,
            "memory_bytes": self.memory_bytes,
            "tasks": self.tasks,
            "pressure": dict(self.pressure),
        }


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


class FlightRecorder:
    def __init__(
        self,
        capacity: int = 360,
        *,
        keep: int = 10,  # crash reports kept in the state directory; older ones are removed
        now: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        if keep <= 0:
            raise ValueError(f"keep {keep} must be positive")
        self.keep = keep
        if capacity <= 0:
            raise ValueError(f"capacity {capacity} must be positive")
        self.capacity = capacity
        self._ring: collections.deque[dict[str, Any]] = collections.deque(maxlen=capacity)
        self._now = now

    def record(self, snapshot: Snapshot | Mapping[str, Any]) -> None:
        """Keep ``snapshot``; the oldest goes when the ring is full."""
        entry = snapshot.as_dict() if isinstance(snapshot, Snapshot) else dict(snapshot)
        self._ring.append(entry)

    def snapshots(self) -> list[dict[str, Any]]:
        return list(self._ring)

    def __len__(self) -> int:
        return len(self._ring)

    def dump(self, state_dir: Path, reason: str) -> Path:
        """Write the crash report ``state_dir/crash-<UTC timestamp>.json``; returns its path."""
        return _write(state_dir, *self._report(reason), keep=self.keep)

    async def dump_async(self, state_dir: Path, reason: str) -> Path:
        """:meth:`dump` without blocking the loop: the snapshots are taken here, on the loop
        that records them, and written in a thread. Cancelling the caller does not stop the
        write, so the report is still whole."""
        moment, report = self._report(reason)
        return await asyncio.to_thread(_write, state_dir, moment, report, keep=self.keep)

    def _report(self, reason: str) -> tuple[datetime.datetime, dict[str, Any]]:
        moment = self._now().astimezone(datetime.UTC)
        report = {
            "reason": reason,
            "written_at": moment.isoformat().replace("+00:00", "Z"),
            "pid": os.getpid(),
            "capacity": self.capacity,
            "snapshots": self.snapshots(),
        }
        return moment, report


def _write(
    state_dir: Path, moment: datetime.datetime, report: Mapping[str, Any], *, keep: int
) -> Path:
    """Write ``report`` atomically as ``state_dir/crash-<moment>.json``; keep the newest
    ``keep`` reports (the names sort by time), so a flapping cause cannot fill the disk."""
    state_dir.mkdir(parents=True, exist_ok=True)
    target = state_dir / f"crash-{moment.strftime('%Y%m%dT%H%M%S.%fZ')}.json"
    fd, temporary = tempfile.mkstemp(prefix=".crash-", suffix=".tmp", dir=state_dir)
    try:
        with os.fdopen(fd, "w") as stream:
            json.dump(report, stream, indent=1, default=str)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_directory(state_dir)
    for old in sorted(state_dir.glob("crash-*.json"))[:-keep]:
        old.unlink(missing_ok=True)
    return target


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
