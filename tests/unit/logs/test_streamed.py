"""Containers read through the Docker API: entries become the same stored records as files."""

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import orjson
import pytest

from nodekeeper.api.times import rfc3339_ns
from nodekeeper.logs.records import Batch, ContainerInfo
from nodekeeper.logs.streamed import PARTIAL_BYTES, StreamedContainer

pytestmark = pytest.mark.timeout(10)

INFO = ContainerInfo("a" * 64, "db", "postgres", {}, "local", "")
BASE = 1_790_000_000_000_000_000


@dataclasses.dataclass(frozen=True)
class Entry:
    timestamp: str
    data: bytes


class FakeSource:
    """What Docker's API answers: per stream, entries from a time on (since is inclusive)."""

    def __init__(self, entries: dict[str, list[Entry]]) -> None:
        self.entries = entries
        self.asked: dict[str, float] = {}

    async def follow(
        self, container_id: str, stream: str, since_seconds: float = 0.0
    ) -> AsyncIterator[Entry]:
        self.asked[stream] = since_seconds
        for entry in self.entries.get(stream, []):
            yield entry


def at(n: int) -> str:
    return rfc3339_ns(BASE + n * 1000)


async def follow(source: FakeSource, checkpoint: object = None) -> tuple[list[Batch], object]:
    batches: list[Batch] = []

    async def emit(batch: Batch) -> None:
        batches.append(batch)

    streamed = StreamedContainer(
        INFO,
        source,
        checkpoint,
        emit=emit,
        max_line_bytes=256 * 1024,  # type: ignore[arg-type]
    )
    await streamed.run()
    for _ in batches:
        streamed.committed()
    assert streamed.drained()
    return batches, streamed


def texts(batches: list[Batch], stream: str) -> list[str]:
    records = [orjson.loads(r) for batch in batches for r in batch.records]
    return [r["log"] for r in records if r["stream"] == stream]


async def test_both_streams_are_stored_and_split_lines_joined() -> None:
    piece = b"x" * PARTIAL_BYTES
    source = FakeSource(
        {
            "stdout": [Entry(at(1), b"one\n"), Entry(at(2), piece), Entry(at(2), b"tail")],
            "stderr": [Entry(at(3), b"oops\n"), Entry(at(4), b"no newline at the end")],
        }
    )
    batches, _ = await follow(source)
    # The local driver drops the newline of a split line's last piece: it comes back.
    assert texts(batches, "stdout") == ["one\n", "x" * PARTIAL_BYTES + "tail\n"]
    assert texts(batches, "stderr") == ["oops\n", "no newline at the end\n"]


async def test_a_restart_asks_from_the_checkpoint_and_skips_what_is_stored() -> None:
    first = FakeSource({"stdout": [Entry(at(1), b"a\n"), Entry(at(2), b"b\n")]})
    batches, _ = await follow(first)
    checkpoint = batches[-1].checkpoint
    # Docker's since is inclusive: b comes again, and c is new.
    again = FakeSource({"stdout": [Entry(at(2), b"b\n"), Entry(at(3), b"c\n")]})
    batches, _ = await follow(again, checkpoint)
    assert texts(batches, "stdout") == ["c\n"]
    assert again.asked["stdout"] == pytest.approx((BASE + 2000) / 1e9)
    assert again.asked["stderr"] == 0.0


class HangingSource(FakeSource):
    """Answers its entries, then waits as a running container's stream does."""

    async def follow(
        self, container_id: str, stream: str, since_seconds: float = 0.0
    ) -> AsyncIterator[Entry]:
        async for entry in super().follow(container_id, stream, since_seconds):
            yield entry
        await asyncio.Event().wait()


async def test_a_line_split_across_a_restart_is_joined_once() -> None:
    # The pieces of a split line share one timestamp: resuming by time alone would skip the
    # pieces not read yet, or read the stored ones twice.
    piece = b"x" * PARTIAL_BYTES
    batches: list[Batch] = []
    emitted = asyncio.Event()

    async def emit(batch: Batch) -> None:
        batches.append(batch)
        emitted.set()

    first = HangingSource({"stdout": [Entry(at(1), b"a\n"), Entry(at(2), piece)]})
    streamed = StreamedContainer(INFO, first, None, emit=emit, max_line_bytes=256 * 1024)  # type: ignore[arg-type]
    running = asyncio.create_task(streamed.run())
    await emitted.wait()
    running.cancel()  # the agent is killed with the line half read
    with pytest.raises(asyncio.CancelledError):
        await running
    checkpoint = batches[-1].checkpoint

    again = FakeSource(
        {"stdout": [Entry(at(2), piece), Entry(at(2), b"tail"), Entry(at(3), b"b\n")]}
    )
    resumed, _ = await follow(again, checkpoint)
    assert texts(batches, "stdout") == ["a\n"]
    assert texts(resumed, "stdout") == ["x" * PARTIAL_BYTES + "tail\n", "b\n"]
