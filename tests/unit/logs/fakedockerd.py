"""A container's json-file log written the way dockerd writes it, rotation included.

dockerd (daemon/logger/loggerutils/logfile.go) checks capacity *before* each write: when the
live file has reached max-size it deletes ``.{max-file - 1}``, renames ``.N-1`` -> ``.N`` down
to live -> ``.1`` (with ``.gz`` on the rotated names when compressing), creates a new live file
and then compresses ``.1`` into ``.1.gz`` (removing ``.1``). With max-file 1 it reopens the live
file with O_TRUNC instead.
"""

import gzip
import os
import shutil
from pathlib import Path

import orjson

from nodekeeper.api.times import rfc3339_ns
from nodekeeper.logs.records import ContainerInfo

BASE_NS = 1_790_000_000_000_000_000
PARTIAL_BYTES = 16 * 1024


class FakeDockerd:
    def __init__(
        self,
        root: Path,
        container_id: str = "c0ffee" * 10 + "abcd",
        *,
        max_size: int = 0,  # 0: never rotate on size
        max_files: int = 1,
        compress: bool = False,
    ) -> None:
        self.id = container_id
        self.directory = root / container_id
        self.directory.mkdir(parents=True)
        self.path = self.directory / f"{container_id}-json.log"
        self.max_size = max_size
        self.max_files = max_files
        self.compress = compress
        self.written: list[str] = []  # every complete line's text, in order
        self._clock = BASE_NS
        self.path.touch()

    @property
    def info(self) -> ContainerInfo:
        return ContainerInfo(
            id=self.id,
            name="app",
            image="busybox",
            labels={},
            log_driver="json-file",
            log_path=str(self.path),
            max_files=self.max_files,
            compress=self.compress,
        )

    def record(self, log: str, stream: str = "stdout") -> bytes:
        self._clock += 1_000_123
        entry = {"log": log, "stream": stream, "time": rfc3339_ns(self._clock)}
        return orjson.dumps(entry) + b"\n"

    def write_raw(self, data: bytes) -> None:
        if self.max_size and self.path.stat().st_size >= self.max_size:
            self.rotate()
        with self.path.open("ab") as live:
            live.write(data)

    def line(self, text: str, stream: str = "stdout") -> None:
        """One line as a container prints it: split into 16 KiB partials when longer."""
        body = text.encode()
        pieces = [body[i : i + PARTIAL_BYTES] for i in range(0, len(body), PARTIAL_BYTES)] or [b""]
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            self.write_raw(self.record(piece.decode() + ("\n" if last else ""), stream))
        self.written.append(text)

    def lines(self, count: int, prefix: str = "line") -> None:
        start = len(self.written)
        for number in range(start, start + count):
            self.line(f"{prefix}-{number:06d}")

    def rotate(self, *, compress_now: bool = True) -> None:
        if self.max_files < 2:
            os.truncate(self.path, 0)
            return
        extension = ".gz" if self.compress else ""
        Path(f"{self.path}.{self.max_files - 1}{extension}").unlink(missing_ok=True)
        for index in range(self.max_files - 1, 1, -1):
            source = Path(f"{self.path}.{index - 1}{extension}")
            if source.exists():
                source.rename(f"{self.path}.{index}{extension}")
        self.path.rename(f"{self.path}.1")
        self.path.touch()
        if self.compress and compress_now:
            self.compress_first()

    def compress_first(self) -> None:
        """dockerd's compression of a freshly rotated ``.1``."""
        rotated = Path(f"{self.path}.1")
        with rotated.open("rb") as source, gzip.open(f"{rotated}.gz", "wb") as target:
            shutil.copyfileobj(source, target)
        rotated.unlink()

    def copytruncate(self) -> bytes:
        """What logrotate's copytruncate does behind dockerd's back; returns the copy."""
        copied = self.path.read_bytes()
        os.truncate(self.path, 0)
        return copied

    def remove_container(self) -> None:
        shutil.rmtree(self.directory)

    def files(self) -> list[str]:
        return sorted(path.name for path in self.directory.iterdir())
