"""Restarts around the pipeline: of the agent while a drain comes in, and of API-read (local
driver) containers while the agent is down or while their last batch is still being stored."""

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from nodekeeper.api.times import rfc3339_ns
from nodekeeper.logs.metrics import LogMetrics
from nodekeeper.logs.pipeline import LogPipeline, PipelineLimits
from nodekeeper.logs.rules import LogRules
from nodekeeper.logs.store import LogStore
from nodekeeper.logs.watcher import Changed, Watcher
from tests.support.waiting import eventually
from tests.unit.logs.test_pipeline import GatedStore, Running, container, stored

pytestmark = pytest.mark.timeout(60)

CID = "a" * 64
BASE = 1_790_000_000_000_000_000


class Entry:
    def __init__(self, n: int, data: bytes) -> None:
        self.n = n
        self.timestamp = rfc3339_ns(BASE + n * 1000)
        self.data = data


class Source:
    """Docker's log stream of a local-driver container: entries from a time on, then more as
    they come, until the container stops."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.stopped = asyncio.Event()
        self.asked: list[float] = []
        self.streams = 0  # follows in progress (stdout and stderr each count)

    async def follow(
        self, container_id: str, stream: str, since_seconds: float = 0.0
    ) -> AsyncIterator[Entry]:
        if stream == "stdout":
            self.asked.append(since_seconds)
        sent = 0
        stopped = self.stopped
        self.streams += 1
        try:
            while True:
                while stream == "stdout" and sent < len(self.entries):
                    entry = self.entries[sent]
                    sent += 1
                    if BASE + entry.n * 1000 >= since_seconds * 1e9 - 1000:
                        yield entry
                if stopped.is_set():
                    return
                await asyncio.sleep(0.01)  # Docker's stream: more entries come in meanwhile
        finally:
            self.streams -= 1


@pytest.fixture
def containers_dir(tmp_path: Path) -> Path:
    path = tmp_path / "containers"
    path.mkdir()
    return path


def write_config(root: Path, *, running: bool) -> None:
    """As dockerd does on every state change: both files replaced by rename."""
    directory = root / CID
    directory.mkdir(exist_ok=True)
    config = {
        "ID": CID,
        "Name": "/db",
        "Config": {"Image": "postgres", "Labels": {}},
        "LogPath": "",
        "State": {"Running": running},
    }
    host = {"LogConfig": {"Type": "local", "Config": {}}}
    for name, data in (("hostconfig.json", host), ("config.v2.json", config)):
        temporary = directory / (name + ".tmp")
        temporary.write_bytes(orjson.dumps(data))
        os.rename(temporary, directory / name)


async def start(
    root: Path, state: Path, source: Source, gated: bool = False
) -> tuple[LogPipeline, LogStore, "asyncio.Task[None]"]:
    real = LogStore(state / "logs.db")
    pipeline = LogPipeline(
        root=root,
        store=GatedStore(real) if gated else real,  # type: ignore[arg-type]
        rules=LogRules(),
        metrics=LogMetrics(CollectorRegistry()),
        limits=PipelineLimits(poll_seconds=0.05, retention_seconds=1e10),
        api_source=source,
    )
    task = asyncio.create_task(pipeline.run())
    await asyncio.wait_for(pipeline.started.wait(), 5)
    return pipeline, real, task


async def stop(task: "asyncio.Task[None]", store: LogStore) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    store.close()


async def test_a_drain_while_the_agent_starts_does_not_read_the_log_twice(
    containers_dir: Path, tmp_path: Path
) -> None:
    docker = container(containers_dir, 1)
    docker.lines(100)
    agent = await Running(containers_dir, tmp_path / "state").start()
    await eventually(lambda: len(stored(agent.path, docker.id)) == 100, what="stored", seconds=20)
    await agent.stop()
    agent = Running(containers_dir, tmp_path / "state")
    agent.task = asyncio.create_task(agent.pipeline.run())
    await asyncio.sleep(0)  # the pipeline is loading its checkpoints
    assert await agent.pipeline.drain(docker.id, 10)
    assert stored(agent.path, docker.id) == docker.written
    await agent.stop()


async def test_a_container_stopped_at_start_and_restarted_later_resumes_its_checkpoint(
    containers_dir: Path, tmp_path: Path
) -> None:
    source = Source()
    source.entries += [Entry(1, b"a\n"), Entry(2, b"b\n")]
    write_config(containers_dir, running=True)
    pipeline, store, task = await start(containers_dir, tmp_path / "state", source)
    await eventually(lambda: len(stored(store.path, CID)) == 2, what="first run stored", seconds=20)
    source.stopped.set()
    write_config(containers_dir, running=False)
    await eventually(lambda: not pipeline.following(CID), what="first run ended", seconds=20)
    await stop(task, store)

    again = Source()
    again.entries = source.entries
    pipeline, store, task = await start(containers_dir, tmp_path / "state", again)
    source.entries.append(Entry(3, b"c\n"))
    write_config(containers_dir, running=True)  # docker start, with no help from the test
    await eventually(
        lambda: len(stored(store.path, CID)) == 3, what="second run stored", seconds=20
    )
    assert stored(store.path, CID) == ["a", "b", "c"]
    assert again.asked[0] == pytest.approx((BASE + 2000) / 1e9)
    await stop(task, store)


async def test_a_restart_while_the_last_batch_is_stored_is_followed(
    containers_dir: Path, tmp_path: Path
) -> None:
    source = Source()
    source.entries.append(Entry(1, b"a\n"))
    write_config(containers_dir, running=True)
    pipeline, store, task = await start(containers_dir, tmp_path / "state", source, gated=True)
    gate = pipeline._store  # type: ignore[attr-defined]
    # A second watcher on the same folder and loop: once it has a config write, the pipeline's
    # own watcher (unpaced here) has had it too.
    with Watcher(containers_dir, max_watches=10) as witness:
        assert witness.add(CID) == "watched"
        gate.open.set()
        await eventually(lambda: len(stored(store.path, CID)) == 1, what="a stored", seconds=20)
        gate.open.clear()  # a slow store write
        source.entries.append(Entry(2, b"b\n"))
        await eventually(lambda: gate.waiting, what="b's batch held at the store", seconds=20)
        source.stopped.set()
        write_config(containers_dir, running=False)  # it exits ...
        await eventually(lambda: source.streams == 0, what="its stream ended", seconds=20)
        await config_written(witness)
        source.stopped = asyncio.Event()
        write_config(containers_dir, running=True)  # ... and its restart policy starts it again
        await config_written(witness)
        await asyncio.sleep(0)  # the step in which the pipeline's watcher hands it on
    # The pipeline saw the restart while the last batch was unstored: the container is still
    # followed (its config events are ignored then), no second stream is opened yet.
    assert gate.waiting
    assert pipeline.following(CID)
    assert len(source.asked) == 1
    gate.open.set()
    source.entries.append(Entry(3, b"c after the restart\n"))
    await eventually(lambda: len(stored(store.path, CID)) == 3, what="all stored", seconds=20)
    assert stored(store.path, CID) == ["a", "b", "c after the restart"]
    await stop(task, store)


async def config_written(watcher: Watcher) -> None:
    """Until ``watcher`` reports a config write of CID (each call takes the next one)."""
    async with asyncio.timeout(20):
        async for changes in watcher:
            if Changed(CID, "config") in changes:
                return
