"""A container's whole log read through the Docker API, stdout and stderr merged in time order.

Each stream is read on its own with Docker's timestamps (``RFC3339NanoFixed``: fixed width, so
they sort as strings), then the entries are merged by timestamp, stdout first on a tie. The
result is the bytes the task wrote, without the timestamps: a task that writes to one stream
gets its output back byte for byte.

Docker splits a line longer than 16 KiB into partial entries, each with its own timestamp and no
newline; :func:`entries` recognises them by that size, so a long line is joined again.
"""

import asyncio
import contextlib
import dataclasses
import heapq
import re
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Literal

import docker

from nodekeeper.runtime.errors import DockerError, calling, translate

Stream = Literal["stdout", "stderr"]
PARTIAL_BYTES = 16 * 1024
_TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) ")


@dataclasses.dataclass(frozen=True)
class LogEntry:
    timestamp: str
    stream: Stream
    data: bytes  # as written, with its newline when it had one


def entries(raw: bytes, stream: Stream) -> Iterator[LogEntry]:
    """Split one stream's timestamped output (``<timestamp> <data>``) into entries."""
    position = 0
    while position < len(raw):
        match = _TIMESTAMP.match(raw, position)
        if match is None:  # no timestamp: keep the bytes rather than lose them
            end = raw.find(b"\n", position)
            end = len(raw) if end < 0 else end + 1
            yield LogEntry("", stream, raw[position:end])
            position = end
            continue
        start = match.end()
        newline = raw.find(b"\n", start)
        end = len(raw) if newline < 0 else newline + 1
        if end - start > PARTIAL_BYTES and _TIMESTAMP.match(raw, start + PARTIAL_BYTES):
            end = start + PARTIAL_BYTES  # a partial entry: the next one continues the line
        yield LogEntry(match.group(0)[:-1].decode(), stream, raw[start:end])
        position = end


def merge(*streams: Sequence[LogEntry]) -> list[LogEntry]:
    """Entries of several streams in timestamp order; stable within a stream."""
    return list(heapq.merge(*streams, key=lambda entry: entry.timestamp))


class ContainerLogs:
    """Reads logs of containers on the node's engine (the json-file driver keeps them)."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._client = client

    async def read(self, container_id: str) -> list[LogEntry]:
        return await asyncio.to_thread(self._read, container_id)

    async def read_bytes(self, container_id: str) -> bytes:
        return b"".join(entry.data for entry in await self.read(container_id))

    def _read(self, container_id: str) -> list[LogEntry]:
        def one(stream: Stream) -> list[LogEntry]:
            raw = calling(
                f"reading the {stream} log of container {container_id}",
                lambda: self._client.api.logs(
                    container_id,
                    stdout=stream == "stdout",
                    stderr=stream == "stderr",
                    timestamps=True,
                    stream=False,
                ),
            )
            return list(entries(bytes(raw), stream))

        return merge(one("stdout"), one("stderr"))

    async def follow(
        self, container_id: str, stream: Stream, since_seconds: float = 0.0
    ) -> AsyncIterator[LogEntry]:
        """One stream's entries from ``since_seconds`` (epoch) on, as they are written, until the
        container stops. For drivers without a file to tail (``local``, ``journald``).

        A thread reads the blocking stream and hands entries over through a bounded queue, so a
        slow consumer slows the reading down instead of growing memory. Raises DockerError.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[LogEntry | BaseException | None] = asyncio.Queue(maxsize=FOLLOW_QUEUE)
        stopping = threading.Event()
        opened: list[Any] = []

        def hand_over(item: LogEntry | BaseException | None) -> None:
            if not stopping.is_set():
                asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

        def pump() -> None:
            try:
                frames = calling(
                    f"following the {stream} log of container {container_id}",
                    lambda: self._client.api.logs(
                        container_id,
                        stdout=stream == "stdout",
                        stderr=stream == "stderr",
                        stream=True,
                        follow=True,
                        timestamps=True,
                        since=since_seconds if since_seconds > 0 else None,
                    ),
                )
                opened.append(frames)
                for frame in frames:  # one frame per entry: "<timestamp> <data>"
                    if stopping.is_set():
                        return
                    for entry in entries(bytes(frame), stream):
                        hand_over(entry)
            except DockerError as e:
                hand_over(e)
            except Exception as e:  # the stream broke mid-way (dockerd restart, removal)
                hand_over(translate(e, doing=f"following container {container_id}"))
            finally:
                hand_over(None)

        thread = threading.Thread(target=pump, name=f"follow {container_id[:12]}", daemon=True)
        thread.start()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stopping.set()
            with contextlib.suppress(Exception):
                queue.get_nowait()  # unblock a hand-over waiting for room
            for frames in opened:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(frames.close)


FOLLOW_QUEUE = 1024  # entries in flight per followed stream
