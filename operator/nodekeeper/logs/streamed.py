"""Containers whose log driver keeps no json-file (``local``, ``journald``): read through the
Docker API's log stream instead, into the same batches, store and metrics as tailed files.

Through the API a split line's pieces carry no partial marker: an entry of exactly 16 KiB without
a newline is taken for a piece, any other entry for a whole line.

Each stream (stdout, stderr) is followed on its own from the time it was last stored. Entries
are turned into json-file records and go through the same parser as files do, so Docker's 16 KiB
partials are merged and over-long lines cut the same way. The checkpoint keeps, per stream, the
Docker time of the last stored entry (``FilePosition(path="docker-api:<stream>", offset=<ns>)``);
after a restart each stream is asked for entries since then and what is not newer is skipped.
Docker's ``since`` works on the entries' own timestamps, so nothing written while the agent was
down is missed, as long as the driver still has it (``local`` rotates too: what it rotated away
cannot be told apart here and is not counted).
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal, Protocol

import orjson

from nodekeeper.api.times import NANOS, docker_time_ns
from nodekeeper.logs.parsing import JsonFileParser, Parsed
from nodekeeper.logs.records import Batch, Checkpoint, ContainerInfo, FilePosition

logger = logging.getLogger(__name__)

Stream = Literal["stdout", "stderr"]
STREAMS: tuple[Stream, ...] = ("stdout", "stderr")
BATCH_ENTRIES = 1000  # entries per batch at most; a quiet stream sends what it has at once
PATH_PREFIX = "docker-api:"
PARTIAL_BYTES = 16 * 1024  # dockerd splits longer lines into entries of exactly this size


class Entry(Protocol):
    @property
    def timestamp(self) -> str: ...
    @property
    def data(self) -> bytes: ...


class LogSource(Protocol):
    """runtime.logstream.ContainerLogs: a stream's entries from a time on, until the container
    stops (raises on failure)."""

    def follow(
        self, container_id: str, stream: Stream, since_seconds: float = 0.0
    ) -> AsyncIterator[Entry]: ...


Emit = Callable[[Batch], Awaitable[None]]


class StreamedContainer:
    """Follows one container's two streams into batches handed to ``emit``."""

    def __init__(
        self,
        info: ContainerInfo,
        source: LogSource,
        checkpoint: Checkpoint | None,
        *,
        emit: Emit,
        max_line_bytes: int,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.info = info
        self._source = source
        self._emit = emit
        self._clock = clock
        self.parser = JsonFileParser(max_line_bytes, checkpoint.pending if checkpoint else None)
        # Per stream: the time of the last stored entry and how many stored entries carry it
        # (the pieces of a split line share their timestamp, so a time alone cannot say where
        # to resume). In the checkpoint: offset = the time, device = the count.
        self._last_ns = dict.fromkeys(STREAMS, 0)
        self._at_last = dict.fromkeys(STREAMS, 0)
        if checkpoint is not None:
            for position in (checkpoint.position, *checkpoint.newer):
                stream = position.path.removeprefix(PATH_PREFIX)
                if stream in self._last_ns:
                    self._last_ns[stream] = position.offset
                    self._at_last[stream] = position.device
        self._in_flight = 0
        self.ended = False  # both streams ended: the container stopped (or reading failed)
        self.bytes_read = 0

    async def run(self) -> None:
        try:
            # One stream failing stops the other: the pipeline then sees the container as ended
            # and follows it again from the checkpoint, never with a stream left running.
            async with asyncio.TaskGroup() as group:
                for stream in STREAMS:
                    group.create_task(self._follow(stream))
            # The container stopped: a line whose last partial never came is stored as it is.
            await self._send_parsed(self.parser.flush(self._clock()), 0)
        finally:
            self.ended = True

    async def _follow(self, stream: Stream) -> None:
        since_ns = latest = self._last_ns[stream]
        skip = same = self._at_last[stream]  # entries at since_ns stored before the restart
        records: list[bytes] = []
        entries = self._source.follow(self.info.id, stream, since_ns / NANOS)
        try:
            upcoming = asyncio.ensure_future(anext(entries))
            while True:
                try:
                    entry = await upcoming
                except StopAsyncIteration:
                    break
                upcoming = asyncio.ensure_future(anext(entries))
                at = docker_time_ns(entry.timestamp) if entry.timestamp else 0
                if at and (at < since_ns or (at == since_ns and skip > 0)):
                    if at == since_ns:
                        skip -= 1
                    continue  # stored before the restart (Docker's since is inclusive)
                data = entry.data
                if not data.endswith(b"\n") and len(data) != PARTIAL_BYTES:
                    # Through the API only a 16 KiB entry is a partial: the local driver drops
                    # the newline of a split line's last piece, so it is given back here (and
                    # a container's final line without a newline gets one too).
                    data += b"\n"
                text = data.decode("utf-8", "backslashreplace")
                records.append(
                    orjson.dumps({"log": text, "stream": stream, "time": entry.timestamp})
                )
                self.bytes_read += len(entry.data)
                if at:
                    same = same + 1 if at == latest else 1
                    latest = at
                await asyncio.sleep(0)  # let the next entry of a burst arrive
                if len(records) >= BATCH_ENTRIES or not upcoming.done():
                    await self._send(records, stream, latest, same)
                    records = []
            await self._send(records, stream, latest, same)
        finally:
            await entries.aclose()  # type: ignore[attr-defined]

    async def _send(self, records: list[bytes], stream: Stream, latest_ns: int, same: int) -> None:
        if records:
            data = b"".join(record + b"\n" for record in records)
            parsed = self.parser.parse(data, self._clock())
            # Only now: the checkpoint must not claim entries another stream still holds.
            self._last_ns[stream] = latest_ns
            self._at_last[stream] = same
            await self._send_parsed(parsed, len(data))

    async def _send_parsed(self, parsed: Parsed, read_bytes: int) -> None:
        if not parsed.records:
            return  # a partial line waiting for its end
        self._in_flight += 1
        await self._emit(
            Batch(
                container_id=self.info.id,
                records=parsed.records,
                first_ns=parsed.first_ns,
                last_ns=parsed.last_ns,
                read_bytes=read_bytes,
                checkpoint=self.checkpoint(),
            )
        )

    def checkpoint(self) -> Checkpoint:
        first, *rest = (
            FilePosition(PATH_PREFIX + stream, self._at_last[stream], 0, b"", self._last_ns[stream])
            for stream in STREAMS
        )
        return Checkpoint(self.info.id, first, self.parser.pending, tuple(rest))

    def committed(self) -> None:
        self._in_flight -= 1

    def drained(self) -> bool:
        return self.ended and self._in_flight == 0
