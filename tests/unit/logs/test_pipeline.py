"""The whole pipeline in-process: real files, real inotify, real SQLite; Docker is mimicked by
FakeDockerd writing json-file logs the way dockerd does, plus the two config files discovery
reads."""

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from nodekeeper.logs.metrics import LogMetrics, WorkloadLogCollector
from nodekeeper.logs.pipeline import LogPipeline, PipelineLimits
from nodekeeper.logs.query import container_lines
from nodekeeper.logs.records import Batch, ContainerInfo
from nodekeeper.logs.rules import LogRules
from nodekeeper.logs.store import LogStore, StoreFullError
from tests.support.waiting import eventually
from tests.unit.logs.fakedockerd import FakeDockerd

pytestmark = pytest.mark.timeout(60)

# FakeDockerd writes with fixed old timestamps: retention by age must not take them.
LIMITS = PipelineLimits(
    poll_seconds=0.05, queue_bytes=2**20, read_chunk_bytes=64 * 1024, retention_seconds=1e10
)


def container(
    root: Path, number: int, name: str = "", labels: dict[str, str] | None = None, **options: Any
) -> FakeDockerd:
    docker = FakeDockerd(root, f"{number:064x}", **options)
    labels = labels or {"app": name or f"c{number}"}
    config = {
        "ID": docker.id,
        "Name": "/" + (name or f"c{number}"),
        "Config": {"Image": "busybox", "Labels": labels},
        "LogPath": str(docker.path),
    }
    log_config = {"max-file": str(docker.max_files)} if docker.max_files > 1 else {}
    if docker.max_files > 1:
        log_config["max-size"] = str(docker.max_size)  # as dockerd records it: rotation needs it
    host = {"LogConfig": {"Type": "json-file", "Config": log_config}}
    (docker.directory / "hostconfig.json").write_bytes(orjson.dumps(host))
    (docker.directory / "config.v2.json").write_bytes(orjson.dumps(config))
    return docker


def stored(store_path: Path, container_id: str) -> list[str]:
    return [line.log.rstrip("\n") for line in container_lines(store_path, container_id)]


class Running:
    def __init__(self, root: Path, state: Path, store: Any = None, **limits: Any) -> None:
        self.registry = CollectorRegistry()
        self.metrics = LogMetrics(self.registry)
        self.path = state / "logs.db"
        self.real_store = LogStore(self.path)
        self.store = store(self.real_store) if store else self.real_store
        fields = {**LIMITS.__dict__, **limits}
        self.pipeline = LogPipeline(
            root=root,
            store=self.store,
            rules=LogRules(exclude=["name=skipped*"]),
            metrics=self.metrics,
            limits=PipelineLimits(**fields),
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> "Running":
        self.task = asyncio.create_task(self.pipeline.run())
        await asyncio.wait_for(self.pipeline.started.wait(), 10)
        return self

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task
        self.real_store.close()

    def value(self, name: str) -> float:
        return self.registry.get_sample_value(name) or 0.0


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "containers"
    path.mkdir()
    return path


@pytest.fixture
async def running(root: Path, tmp_path: Path) -> AsyncIterator[Running]:
    agent = await Running(root, tmp_path / "state").start()
    yield agent
    await agent.stop()


async def test_lines_written_before_and_after_start_are_stored_once_in_order(
    root: Path, tmp_path: Path
) -> None:
    early = container(root, 1)
    early.lines(500, "early")
    agent = await Running(root, tmp_path / "state").start()
    try:
        early.lines(500, "later")
        born = container(root, 2)  # found through inotify on the root, not a rescan
        born.lines(300, "born")
        await eventually(
            lambda: len(stored(agent.path, early.id)) == 1000, what="early stored", seconds=20
        )
        await eventually(
            lambda: len(stored(agent.path, born.id)) == 300, what="born stored", seconds=20
        )
        assert stored(agent.path, early.id) == early.written
        assert stored(agent.path, born.id) == born.written
        assert agent.value("nodekeeper_log_lines_total") == 1300
    finally:
        await agent.stop()


async def test_a_missing_containers_folder_is_waited_for_not_fatal(tmp_path: Path) -> None:
    root = tmp_path / "docker-not-installed-yet"
    agent = Running(root, tmp_path / "state")
    task = asyncio.create_task(agent.pipeline.run())
    try:
        await asyncio.sleep(0.2)  # several poll intervals
        assert not task.done()
        assert not agent.pipeline.started.is_set()
        root.mkdir()
        await asyncio.wait_for(agent.pipeline.started.wait(), 10)
        docker = container(root, 9)
        docker.lines(10)
        await eventually(
            lambda: len(stored(agent.path, docker.id)) == 10, what="stored", seconds=20
        )
    finally:
        agent.task = task
        await agent.stop()


async def test_rotation_while_running_loses_nothing(running: Running, root: Path) -> None:
    docker = container(root, 3, max_size=20_000, max_files=3)
    for _ in range(30):
        docker.lines(100)
        await asyncio.sleep(0)  # rotations happen between reads, and between refreshes
    await eventually(
        lambda: len(stored(running.path, docker.id)) == 3000, what="all stored", seconds=20
    )
    assert stored(running.path, docker.id) == docker.written
    assert running.value("nodekeeper_log_rotations_total") > 0
    assert running.value("nodekeeper_log_lost_bytes_total") == 0


async def test_a_paced_watcher_still_loses_nothing_when_files_rotate_small(
    root: Path, tmp_path: Path
) -> None:
    """Pacing would see a rotation up to one pace late; a 20 kB max-size rotates many times in
    that while, so the pipeline does not pace while such a container is followed."""
    # No ticker safety net within the test (it marks every container each poll).
    agent = await Running(root, tmp_path / "state", event_pace_seconds=0.5, poll_seconds=30).start()
    try:
        docker = container(root, 5, max_size=20_000, max_files=3)
        await eventually(lambda: agent.pipeline.following(docker.id), what="followed", seconds=20)
        docker.lines(10)
        await asyncio.sleep(0.05)  # their event is handed out: a paced watcher now looks
        # away for 0.5 s, while this burst rotates the file several times.
        for _ in range(30):
            docker.lines(100)
            await asyncio.sleep(0.005)  # the loop runs: an unpaced watcher sees each rotation
        await eventually(
            lambda: len(stored(agent.path, docker.id)) == 3010, what="all stored", seconds=20
        )
        assert stored(agent.path, docker.id) == docker.written
        assert agent.value("nodekeeper_log_rotations_total") > 0
        assert agent.value("nodekeeper_log_lost_bytes_total") == 0
    finally:
        await agent.stop()


async def test_a_paced_watcher_stores_a_trickle_from_unrotated_containers(
    root: Path, tmp_path: Path
) -> None:
    agent = await Running(root, tmp_path / "state", event_pace_seconds=0.2).start()
    try:
        writers = [container(root, 20 + n) for n in range(5)]
        for _ in range(10):
            for docker in writers:
                docker.lines(2)
            await asyncio.sleep(0.05)
        for docker in writers:
            await eventually(
                lambda d=docker: len(stored(agent.path, d.id)) == 20, what="stored", seconds=20
            )
            assert stored(agent.path, docker.id) == docker.written
    finally:
        await agent.stop()


async def test_a_restart_resumes_at_the_checkpoint_without_duplicates(
    root: Path, tmp_path: Path
) -> None:
    docker = container(root, 4, max_size=30_000, max_files=5)
    docker.lines(400, "first")
    agent = await Running(root, tmp_path / "state").start()
    await eventually(
        lambda: len(stored(agent.path, docker.id)) == 400, what="first stored", seconds=20
    )
    await agent.stop()
    docker.lines(400, "while-down")  # rotates at least once while nobody reads
    agent = await Running(root, tmp_path / "state").start()
    try:
        await eventually(
            lambda: len(stored(agent.path, docker.id)) == 800, what="all stored", seconds=20
        )
        assert stored(agent.path, docker.id) == docker.written
    finally:
        await agent.stop()


async def test_a_removed_container_is_drained_then_forgotten(running: Running, root: Path) -> None:
    docker = container(root, 5)
    docker.lines(200)
    await eventually(lambda: running.pipeline.following(docker.id), what="followed", seconds=20)
    docker.write_raw(docker.record("the last line, without its newline")[:-1])
    docker.remove_container()
    await eventually(
        lambda: not running.pipeline.following(docker.id), what="forgotten", seconds=20
    )
    lines = stored(running.path, docker.id)
    assert lines[:200] == docker.written
    assert len(lines) == 201  # the unterminated tail is kept (raw), not dropped
    assert running.value("nodekeeper_log_malformed_lines_total") == 1
    await eventually(
        lambda: docker.id not in running.real_store.checkpoints(), what="no checkpoint", seconds=20
    )
    assert running.pipeline.state()["files_watched"] == 0


async def test_drain_answers_once_the_last_line_is_stored(running: Running, root: Path) -> None:
    docker = container(root, 6)
    docker.lines(1000)
    assert await running.pipeline.drain(docker.id, 20)
    assert stored(running.path, docker.id) == docker.written  # no waiting: drained means stored
    assert await running.pipeline.drain("f" * 64, 1)  # not followed: nothing to wait for


async def test_excluded_containers_are_not_stored(running: Running, root: Path) -> None:
    skipped = container(root, 7, name="skipped-one")
    kept = container(root, 8, name="kept")
    skipped.lines(10)
    kept.lines(10)
    assert await running.pipeline.drain(kept.id, 20)
    assert stored(running.path, kept.id) == kept.written
    assert not running.pipeline.following(skipped.id)
    assert stored(running.path, skipped.id) == []


class GatedStore:
    """The real store behind a gate: writes wait while it is shut, or fail as a full disk."""

    def __init__(self, real: LogStore) -> None:
        self.real = real
        self.open = threading.Event()
        self.full_for = 0  # this many writes fail with StoreFullError first
        self.waiting = 0  # writes held at the shut gate now

    def write(self, batches: Sequence[Batch], containers: Sequence[ContainerInfo]) -> Any:
        if self.full_for:
            self.full_for -= 1
            raise StoreFullError("database or disk is full")
        self.waiting += 1
        try:
            if not self.open.wait(30):
                raise AssertionError("the gate was never opened")
        finally:
            self.waiting -= 1
        return self.real.write(batches, containers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_a_stalled_store_pauses_readers_and_times_out_drains_but_loses_nothing(
    root: Path, tmp_path: Path
) -> None:
    agent = await Running(root, tmp_path / "state", store=GatedStore).start()
    gate = agent.store
    try:
        docker = container(root, 9)
        for _ in range(30):
            docker.lines(1000, "x" * 100)  # ~5 MiB: far past the 1 MiB queue
        assert not await agent.pipeline.drain(docker.id, 0.5)
        assert agent.value("nodekeeper_log_drain_timeouts_total") == 1
        await eventually(
            lambda: agent.value("nodekeeper_log_backpressure_total") > 0, what="paused", seconds=20
        )
        assert agent.pipeline.state()["queue_bytes"] <= 2**20 + LIMITS.read_chunk_bytes * 2
        gate.open.set()
        assert await agent.pipeline.drain(docker.id, 30)
        assert stored(agent.path, docker.id) == docker.written
    finally:
        gate.open.set()
        await agent.stop()


async def test_a_full_disk_pauses_then_resumes_without_loss(root: Path, tmp_path: Path) -> None:
    agent = await Running(
        root, tmp_path / "state", store=GatedStore, retention_interval_seconds=3600
    ).start()
    gate = agent.store
    gate.open.set()
    gate.full_for = 2
    try:
        docker = container(root, 10)
        docker.lines(100)
        await eventually(
            lambda: agent.value("nodekeeper_log_store_full_total") >= 1, what="full", seconds=20
        )
        assert agent.pipeline.state()["store_paused"] == 1
        assert await agent.pipeline.drain(docker.id, 30)  # retried after 1 s, then 2 s
        assert agent.pipeline.state()["store_paused"] == 0
        assert stored(agent.path, docker.id) == docker.written
    finally:
        await agent.stop()


async def test_lines_are_counted_per_workload_in_metrics_not_status(
    running: Running, root: Path
) -> None:
    running.registry.register(WorkloadLogCollector(lambda: running.pipeline.workload_totals))
    labels = {"nodekeeper.io/workload-uid": "u1", "nodekeeper.io/namespace": "shop"}
    docker = container(root, 11, labels={**labels, "nodekeeper.io/name": "web"})
    docker.lines(42)
    assert await running.pipeline.drain(docker.id, 20)
    where = {"namespace": "shop", "workload": "web"}
    assert running.registry.get_sample_value("nodekeeper_workload_log_lines_total", where) == 42
