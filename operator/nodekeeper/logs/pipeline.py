"""The log pipeline: every container's json-file log, read once, stored once, in order.

    watcher (inotify) --marks dirty--> reader --Batch--> bounded queue --> writer --> store
         ticker (poll, refresh, retention)                                 |
                                                          follower.committed(checkpoint)

Four named tasks run in one TaskGroup; any of them failing stops the pipeline (and the agent's
supervisor stops the agent). The reader parses on the event loop in bounded chunks and yields
between them; the writer compresses and commits in a worker thread, so parsing and storing
overlap. A batch and the checkpoint that produced it commit in one transaction, so a crash at any
point loses nothing and duplicates nothing: reading resumes at the last committed checkpoint.

Nothing is dropped to keep up: when the queue holds ``queue_bytes`` the reader waits; when the
disk is full the writer retries (retention may free space) and the reader waits behind it. What
Docker deletes before it could be read is counted in ``nodekeeper_log_lost_bytes_total``.

The removal handshake: :meth:`LogPipeline.drain` returns once every byte a container wrote is
stored, so its container may be removed (Docker deletes the log with it).
"""

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from nodekeeper.logs.discovery import ContainerCatalog, is_container_id
from nodekeeper.logs.follower import Follower
from nodekeeper.logs.metrics import LogMetrics
from nodekeeper.logs.parsing import JsonFileParser
from nodekeeper.logs.records import Batch, Checkpoint, ContainerInfo
from nodekeeper.logs.rules import LogRules
from nodekeeper.logs.store import LogStore, StoreFullError
from nodekeeper.logs.streamed import PATH_PREFIX, LogSource, StreamedContainer
from nodekeeper.logs.watcher import Watcher

logger = logging.getLogger(__name__)

MAX_WRITE_LINES = 50_000  # one transaction holds at most this many lines (bounded latency)
STORE_SIZE_EVERY_SECONDS = 10.0
# Pacing the watcher delays seeing a rotation by up to one pace. A file Docker rotates in is lost
# only if it is rotated on and deleted before the agent opens it: at least two more rotations.
# With max-size at 8 MiB or more that is 16 MiB from one container within one pace (over
# 100 MB/s at 0.15 s), beyond what dockerd's json-file writes; with a smaller max-size, or one
# the agent cannot read, it does not pace at all.
PACE_SAFE_MAX_SIZE_BYTES = 8 * 2**20
FULL_RETRY_SECONDS = (1.0, 30.0)  # first and longest wait before retrying a full store


@dataclasses.dataclass(frozen=True)
class PipelineLimits:
    max_line_bytes: int = 256 * 1024
    read_chunk_bytes: int = 256 * 1024
    queue_bytes: int = 32 * 2**20
    poll_seconds: float = 1.0
    retention_seconds: float = 7 * 86400.0
    retention_max_bytes: int = 2 * 2**30
    retention_interval_seconds: float = 60.0
    read_from_head: bool = True
    max_watches: int = 8192
    read_linger_seconds: float = 0.1
    write_linger_seconds: float = 0.05
    event_pace_seconds: float = 0.0  # inotify batches at most this often (0: as they come)


@dataclasses.dataclass
class _Followed:
    follower: Follower
    parser: JsonFileParser
    info: ContainerInfo
    gone: bool = False  # its directory was deleted: drain, then close
    seen: dict[str, int] = dataclasses.field(default_factory=dict)  # counters already exported


class LogPipeline:
    def __init__(
        self,
        *,
        root: Path,
        store: LogStore,
        rules: LogRules,
        metrics: LogMetrics,
        limits: PipelineLimits,
        api_source: LogSource | None = None,  # Docker's log stream, for drivers without a file
        read_size: Callable[[], int] | None = None,  # bytes per read now (self-protection)
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._read_size = read_size or (lambda: limits.read_chunk_bytes)
        self._root = root
        self._store = store
        self._rules = rules
        self._metrics = metrics
        self._limits = limits
        self._clock = clock
        self._catalog = ContainerCatalog(root)
        self._watcher: Watcher | None = None
        self._followed: dict[str, _Followed] = {}
        self._api_source = api_source
        self._streamed: dict[str, StreamedContainer] = {}
        self._stream_tasks: dict[str, asyncio.Task[None]] = {}
        self._stream_resume: dict[str, Checkpoint] = {}  # stopped ones, for when they restart
        self._unfollowed: dict[str, str] = {}  # container -> why its lines cannot be stored
        self._waiting_checkpoints: dict[str, Checkpoint] = {}  # could not be opened yet
        self._stopped = False
        self._undiscovered: set[str] = set()  # directories whose config is not written yet
        self._dirty: dict[str, None] = {}  # ordered set: read round-robin
        self._wake = asyncio.Event()
        self._queue: collections.deque[Batch] = collections.deque()
        self._queued = asyncio.Event()
        self._space = asyncio.Event()
        self._queued_bytes = 0
        self._drains: dict[str, list[asyncio.Future[None]]] = {}
        self._paused = False
        self._store_bytes = 0
        self._fallbacks_seen = 0
        # (namespace, workload) -> lines and bytes stored, for per-Workload metrics (not status)
        self.workload_totals: dict[tuple[str, str], list[int]] = {}
        self.started = asyncio.Event()

    # ------------------------------------------------------------------ running
    async def run(self) -> None:
        try:
            await self._start()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._watch(), name="log watcher")
                group.create_task(self._read(), name="log reader")
                group.create_task(self._write(), name="log writer")
                group.create_task(self._tick(), name="log ticker")
        finally:
            self._stopped = True
            for followed in self._followed.values():
                followed.follower.close()
            self._followed.clear()
            for task in self._stream_tasks.values():
                task.cancel()
            await asyncio.gather(*self._stream_tasks.values(), return_exceptions=True)
            if self._watcher is not None:
                self._watcher.close()
            for waiters in self._drains.values():
                for waiter in waiters:
                    waiter.cancel()

    async def _root_exists(self) -> None:
        """Wait for Docker's containers folder: on a node where Docker is not installed yet, or
        uses another data-root than configured, the agent waits and says so, as Fluent Bit's
        tail does for a missing path, rather than dying and restarting in a loop."""
        if self._root.is_dir():
            return
        logger.warning(
            "the log containers folder does not exist; waiting for it (log_containers_dir)",
            extra={"root": str(self._root)},
        )
        while not self._root.is_dir():  # noqa: ASYNC110 (a folder appearing has no event to await)
            await asyncio.sleep(self._limits.poll_seconds)
        logger.info("the log containers folder appeared", extra={"root": str(self._root)})

    async def _start(self) -> None:
        await self._root_exists()
        self._watcher = Watcher(
            self._root, max_watches=self._limits.max_watches, pace=self._event_pace
        )
        checkpoints = await asyncio.to_thread(self._store.checkpoints)
        found = await asyncio.to_thread(self._catalog.scan)
        for container_id, info in found.items():
            self._consider(info, checkpoints.pop(container_id, None), born_now=False)
        for path in self._root.iterdir() if self._root.is_dir() else ():
            # Directories whose config is not written yet: found when it is.
            if is_container_id(path.name) and path.name not in found:
                self._discover(path.name)
        now = self._clock()
        for container_id, checkpoint in checkpoints.items():
            self._account_vanished(checkpoint)
            await asyncio.to_thread(self._store.forget, container_id, now)
        self._store_bytes = await asyncio.to_thread(self._store.size_bytes)
        logger.info(
            "log pipeline started",
            extra={
                "root": str(self._root),
                "containers": len(self._followed),
                "vanished": len(checkpoints),
            },
        )
        self.started.set()

    def _consider(
        self, info: ContainerInfo, checkpoint: Checkpoint | None, *, born_now: bool
    ) -> None:
        """Follow a container when the rules say so; unfollowed ones are merely skipped."""
        if info.id in self._followed or info.id in self._streamed:
            return
        source = self._rules.source(info)
        if source != "file" or not self._rules.follows(info):
            if self._watcher is not None and source != "api":
                self._watcher.remove(info.id)  # an api one stays watched: its restarts matter
            if self._rules.follows(info):
                self._follow_stream(info, checkpoint, source)
            return
        if not info.log_path:
            # dockerd names the json-file when the container first starts and rewrites its
            # config then: the config event (or the ticker) brings it back here.
            self._undiscovered.add(info.id)
            if self._watcher is not None:
                self._watcher.add(info.id)
            return
        self._undiscovered.discard(info.id)
        parser = JsonFileParser(
            self._limits.max_line_bytes, checkpoint.pending if checkpoint else None
        )
        try:
            follower = Follower(
                info,
                parser,
                checkpoint,
                # A container born while we watch is read from its first line, always.
                read_from_head=born_now or self._limits.read_from_head,
                chunk_bytes=self._limits.read_chunk_bytes,
                max_line_bytes=self._limits.max_line_bytes,
            )
        except OSError as e:
            # Removed in between, or unreadable: the ticker tries again while it exists.
            logger.warning(
                "container log cannot be opened yet", extra={"container": info.id, "error": str(e)}
            )
            self._undiscovered.add(info.id)
            if checkpoint is not None:
                self._waiting_checkpoints[info.id] = checkpoint  # resume there, not at the head
            return
        self._followed[info.id] = _Followed(follower, parser, info)
        self._account(self._followed[info.id])  # lost bytes found while resuming
        assert self._watcher is not None
        self._watcher.add(info.id)
        self._mark(info.id)

    def _follow_stream(
        self, info: ContainerInfo, checkpoint: Checkpoint | None, source: str
    ) -> None:
        """A driver without a json-file: Docker's API stream, or nothing at all (counted)."""
        if source != "api" or self._api_source is None:
            why = f"log driver {info.log_driver or 'none'} keeps no log the agent can read"
            if source == "api":
                why = f"log driver {info.log_driver} needs the Docker API, which is not connected"
            if self._unfollowed.get(info.id) != why:
                logger.warning("container log not stored", extra={"container": info.id, "why": why})
            self._unfollowed[info.id] = why
            return
        if checkpoint is not None:
            self._stream_resume[info.id] = checkpoint
        if self._watcher is not None:
            self._watcher.add(info.id)  # its restart rewrites the config: that event
        if not info.running:
            return  # a stopped container has nothing new (the ticker looks again, too)
        self._unfollowed.pop(info.id, None)
        streamed = StreamedContainer(
            info,
            self._api_source,
            self._stream_resume.pop(info.id, None),
            emit=self._enqueue,
            max_line_bytes=self._limits.max_line_bytes,
            clock=self._clock,
        )
        self._streamed[info.id] = streamed
        task = asyncio.create_task(streamed.run(), name=f"log stream {info.id[:12]}")
        self._stream_tasks[info.id] = task
        task.add_done_callback(lambda done: self._stream_ended(info.id, done))

    def _restream(self) -> None:
        """Follow again the API-read containers that run but are not followed: restarted while
        their last batch was in flight, or their stream broke (a dockerd restart)."""
        for container_id in list(self._stream_resume):
            if container_id in self._streamed:
                continue
            info = self._catalog.refresh(container_id)
            if info is not None and info.running:
                self._consider(info, None, born_now=False)

    def _stream_ended(self, container_id: str, task: "asyncio.Task[None]") -> None:
        self._stream_tasks.pop(container_id, None)
        if not task.cancelled() and task.exception() is not None:
            logger.warning(
                "following a container log through the Docker API failed",
                extra={"container": container_id, "error": str(task.exception())},
            )
        self._settle(container_id)

    async def _enqueue(self, batch: Batch) -> None:
        """Queue a batch, waiting while the queue is full (readers pause; nothing is dropped)."""
        await self._enqueue_room()
        self._queue.append(batch)
        self._queued_bytes += batch.read_bytes
        self._queued.set()

    async def _enqueue_room(self) -> None:
        limit = self._limits.queue_bytes
        if self._queued_bytes >= limit:
            self._metrics.backpressure.inc()
            while self._queued_bytes >= limit:
                self._space.clear()
                await self._space.wait()

    def _account_vanished(self, checkpoint: Checkpoint) -> None:
        """A followed container was removed while the agent was down."""
        lost_bytes = 0
        unknown = 0
        if checkpoint.position.path.startswith(PATH_PREFIX):
            return  # read through the API: nothing is known about what it had left
        for position in (checkpoint.position, *checkpoint.newer):
            if position.final_size is None:
                unknown += 1  # still live when last seen: its end was never known
            else:
                lost_bytes += max(0, position.final_size - position.offset)
        self._metrics.lost_bytes.inc(lost_bytes)
        self._metrics.lost_files.inc(max(0, unknown - 1))  # the live one may well be complete
        logger.warning(
            "container removed while the agent was down: its log ends where it was last read",
            extra={"container": checkpoint.container_id, "lost_bytes": lost_bytes},
        )

    def _event_pace(self) -> float:
        """How often to take inotify events: the setting, unless a followed container rotates
        at a small size (see PACE_SAFE_MAX_SIZE_BYTES); then as they come."""
        pace = self._limits.event_pace_seconds
        if pace > 0:
            for followed in self._followed.values():
                size = followed.info.max_size_bytes
                if 0 < size < PACE_SAFE_MAX_SIZE_BYTES:
                    return 0.0
        return pace

    def _mark(self, container_id: str) -> None:
        self._dirty[container_id] = None
        self._wake.set()

    # ------------------------------------------------------------------ watcher
    async def _watch(self) -> None:
        assert self._watcher is not None
        async for changes in self._watcher:
            for change in changes:
                self._on_change(change.container_id, change.kind)

    def _on_change(self, container_id: str | None, kind: str) -> None:
        if container_id is None:
            if kind == "new":  # the kernel's queue overflowed: events were lost, so look again
                self._rescan()
            else:
                logger.error(
                    "the Docker containers folder is gone", extra={"root": str(self._root)}
                )
            return
        if kind in ("new", "config") and not self.following(container_id):
            self._discover(container_id)
        elif kind == "gone":
            self._catalog.forget(container_id)  # else one cached config per removed container
            self._undiscovered.discard(container_id)
            self._unfollowed.pop(container_id, None)
            if self._stream_resume.pop(container_id, None) is not None:
                self._forget(container_id)
            followed = self._followed.get(container_id)
            if followed is not None and not followed.gone:
                followed.gone = True
                followed.follower.seal()  # its files get no more bytes: finish the last line
        followed = self._followed.get(container_id)
        if followed is not None:
            if kind == "data":
                # Open files Docker just rotated in at once, not after the read linger: an open
                # file keeps its bytes when Docker deletes it at the next rotations.
                try:
                    followed.follower.refresh()
                except OSError as e:
                    logger.warning(
                        "log files could not be looked at",
                        extra={"container": container_id, "error": str(e)},
                    )
            self._mark(container_id)

    def _rescan(self) -> None:
        for path in self._root.iterdir() if self._root.is_dir() else ():
            if is_container_id(path.name) and not self.following(path.name):
                self._discover(path.name)

    def _discover(self, container_id: str) -> None:
        assert self._watcher is not None
        info = self._catalog.refresh(container_id)
        if info is None:
            # The directory exists before dockerd writes its config: watch it for that write,
            # then look once more, since the write may have come before the watch did (a
            # short-lived container would otherwise wait for the ticker, and be gone by then).
            if not (self._root / container_id).is_dir():
                return
            self._undiscovered.add(container_id)
            self._watcher.add(container_id)
            info = self._catalog.refresh(container_id)
            if info is None:
                return
        self._undiscovered.discard(container_id)
        self._consider(info, self._waiting_checkpoints.pop(container_id, None), born_now=True)

    # ------------------------------------------------------------------ reader
    async def _read(self) -> None:
        while True:
            if not self._dirty:
                self._wake.clear()
                await self._wake.wait()
                # Woken from idle by a trickle: let the next lines of this and other containers
                # arrive, so one read, parse and batch serves several lines (CPU against latency).
                # A paced watcher batches already: lingering too would add the two delays.
                if not self._event_pace():
                    await asyncio.sleep(self._limits.read_linger_seconds)
                continue
            container_id = next(iter(self._dirty))
            del self._dirty[container_id]
            followed = self._followed.get(container_id)
            if followed is None:
                continue
            await self._enqueue_room()  # a full queue pauses reading, before memory grows
            follower = followed.follower
            try:
                # Also here, not only on data events: a polled container gets none, and a long
                # backlog is read in many chunks while Docker may rotate twice.
                follower.refresh()
                batch = follower.read(self._read_size(), self._clock())
            except OSError as e:
                # One container's unreadable file must not stop the others; the ticker retries.
                logger.error(
                    "reading a container log failed",
                    extra={"container": container_id, "error": str(e)},
                )
                continue
            self._account(followed)
            if batch is None:
                self._settle(container_id)
            else:
                await self._enqueue(batch)
                self._mark(container_id)  # there may be more; the next read says
            await asyncio.sleep(0)  # parsing is CPU: let the loop breathe between chunks

    def _account(self, followed: _Followed) -> None:
        """Export what the parser and follower counted since the last look."""
        parsing = followed.parser.counters
        reading = followed.follower.counters
        now = {
            "malformed": parsing.malformed,
            "partial_merges": parsing.partial_merges,
            "truncated_lines": parsing.truncated,
            "truncated_bytes": parsing.truncated_bytes,
            "bytes": reading.bytes_read,
            "rotations": reading.rotations,
            "truncations": reading.truncations,
            "lost_bytes": reading.lost_bytes,
            "lost_files": reading.lost_files,
        }
        seen = followed.seen
        for name, value in now.items():
            delta = value - seen.get(name, 0)
            if delta > 0:
                getattr(self._metrics, name).inc(delta)
                seen[name] = value

    def _settle(self, container_id: str) -> None:
        """Nothing more to read now: answer drains, and finish a removed container."""
        streamed = self._streamed.get(container_id)
        if streamed is not None:
            if streamed.drained():
                self._answer_drains(container_id)
                del self._streamed[container_id]
                if (self._root / container_id).is_dir():
                    self._stream_resume[container_id] = streamed.checkpoint()
                else:
                    self._forget(container_id, streamed.info)
            return
        followed = self._followed.get(container_id)
        if followed is None or not followed.follower.drained():
            return
        self._answer_drains(container_id)
        if followed.gone:
            followed.follower.close()
            del self._followed[container_id]
            self._forget(container_id, followed.info)

    def _answer_drains(self, container_id: str) -> None:
        for waiter in self._drains.pop(container_id, []):
            if not waiter.done():
                waiter.set_result(None)

    def _forget(self, container_id: str, info: ContainerInfo | None = None) -> None:
        """The container is gone and its last line stored: drop its checkpoint and watch, and
        its Workload's log totals once no container of that Workload is left."""
        if self._watcher is not None:
            self._watcher.remove(container_id)
        if info is not None and info.workload:
            key = (info.namespace, info.workload)
            others = [f.info for f in self._followed.values()]
            others += [s.info for s in self._streamed.values()]
            if not any((other.namespace, other.workload) == key for other in others):
                self.workload_totals.pop(key, None)
        task = asyncio.create_task(
            asyncio.to_thread(self._store.forget, container_id, self._clock()),
            name=f"forget {container_id[:12]}",
        )
        task.add_done_callback(_log_failure)

    # ------------------------------------------------------------------ writer
    async def _write(self) -> None:
        while True:
            if not self._queue:
                self._queued.clear()
                await self._queued.wait()
                # A quiet queue woke up: under a steady trickle from many containers, the next
                # batches follow within milliseconds, and one transaction for all of them costs
                # about what one costs for each (measured with bench/logs_overhead.py).
                await asyncio.sleep(self._limits.write_linger_seconds)
                continue
            batches: list[Batch] = []
            lines = 0
            while self._queue and lines < MAX_WRITE_LINES:
                batch = self._queue.popleft()
                batches.append(batch)
                lines += batch.lines
            infos = {
                batch.container_id: info
                for batch in batches
                if (info := self._info_of(batch.container_id)) is not None
            }
            await self._store_durably(batches, list(infos.values()))
            now = self._clock()
            stored_lines = 0
            for batch in batches:
                stored_lines += batch.lines
                info = infos.get(batch.container_id)
                if info is not None and info.workload:
                    totals = self.workload_totals.setdefault(
                        (info.namespace, info.workload), [0, 0]
                    )
                    totals[0] += batch.lines
                    totals[1] += batch.read_bytes
                if batch.first_ns:
                    self._metrics.latency_seconds.observe(max(0, now - batch.first_ns) / 1e9)
                followed = self._followed.get(batch.container_id)
                if followed is not None:
                    followed.follower.committed(batch.checkpoint)
                streamed = self._streamed.get(batch.container_id)
                if streamed is not None:
                    streamed.committed()
            self._metrics.lines.inc(stored_lines)
            self._queued_bytes -= sum(batch.read_bytes for batch in batches)
            self._space.set()
            for container_id in {batch.container_id for batch in batches}:
                self._settle(container_id)

    def _info_of(self, container_id: str) -> ContainerInfo | None:
        followed = self._followed.get(container_id)
        if followed is not None:
            return followed.info
        streamed = self._streamed.get(container_id)
        return streamed.info if streamed is not None else None

    async def _store_durably(self, batches: list[Batch], infos: list[ContainerInfo]) -> None:
        delay, longest = FULL_RETRY_SECONDS
        while True:
            started = time.perf_counter()
            try:
                await asyncio.to_thread(self._store.write, batches, infos)
            except StoreFullError as e:
                self._metrics.store_full.inc()
                if not self._paused:
                    logger.error(
                        "log store is full: reading paused until space is freed",
                        extra={"error": str(e), "retry_seconds": delay},
                    )
                self._paused = True
                await self._enforce_retention()
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)
                continue
            self._metrics.store_write_seconds.observe(time.perf_counter() - started)
            if self._paused:
                logger.warning("log store writable again: reading resumed")
                self._paused = False
            return

    # ------------------------------------------------------------------ ticker
    async def _tick(self) -> None:
        assert self._watcher is not None
        last_retention = 0.0
        last_size = time.monotonic()
        while True:
            await asyncio.sleep(self._limits.poll_seconds)
            # A safety net under inotify, and the only source for polled containers: a refresh
            # is a few stat calls per container.
            for container_id in list(self._undiscovered):
                self._discover(container_id)
            self._restream()
            for container_id in self._followed:
                if not (self._root / container_id).is_dir():  # polled ones get no inotify
                    self._on_change(container_id, "gone")
                self._mark(container_id)
            self._account_watcher()
            now = time.monotonic()
            if now - last_retention >= self._limits.retention_interval_seconds:
                last_retention = now
                await self._enforce_retention()
            if now - last_size >= STORE_SIZE_EVERY_SECONDS:
                last_size = now
                self._store_bytes = await asyncio.to_thread(self._store.size_bytes)

    def _account_watcher(self) -> None:
        assert self._watcher is not None
        delta = self._watcher.fallbacks - self._fallbacks_seen
        if delta > 0:
            self._metrics.watch_fallbacks.inc(delta)
            self._fallbacks_seen = self._watcher.fallbacks

    async def _enforce_retention(self) -> None:
        try:
            result = await asyncio.to_thread(
                self._store.enforce_retention,
                self._limits.retention_seconds,
                self._limits.retention_max_bytes,
                self._clock(),
            )
        except StoreFullError as e:
            # Deleting needs a little space too; the next round (or freed space) succeeds.
            logger.warning("log retention could not run: disk full", extra={"error": str(e)})
            return
        if result.bytes_deleted:
            self._metrics.retention_deleted_bytes.inc(result.bytes_deleted)
            logger.info(
                "log retention deleted old lines",
                extra={"blocks": result.blocks_deleted, "bytes": result.bytes_deleted},
            )

    # ------------------------------------------------------------------ handshake
    async def drain(self, container_id: str, timeout_seconds: float) -> bool:
        """Wait until every byte the (stopped) container wrote is stored.

        True when drained or when the pipeline does not follow that container (excluded, or a
        driver without a file); False after the timeout, which is counted: the caller removes
        the container anyway, so a hung pipeline never blocks a deletion.
        """
        if self._stopped:
            return False  # the agent is stopping: nothing will read this container any more
        try:
            # A drain right after the agent started must not start a second reader of a
            # container whose checkpoint is still being loaded.
            await asyncio.wait_for(self.started.wait(), timeout_seconds)
        except TimeoutError:
            self._metrics.drain_timeouts.inc()
            return False
        if not self.following(container_id) and self._watcher is not None:
            self._discover(container_id)  # it may be younger than our last inotify turn
        if not self.following(container_id):
            return True
        if container_id in self._followed:
            # The caller stopped the container: its live file gets no more bytes.
            self._followed[container_id].follower.seal()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._drains.setdefault(container_id, []).append(waiter)
        self._mark(container_id)
        try:
            await asyncio.wait_for(waiter, timeout_seconds)
            return True
        except TimeoutError:
            self._metrics.drain_timeouts.inc()
            logger.warning(
                "container log not drained in time; removing it anyway",
                extra={"container": container_id, "timeout_seconds": timeout_seconds},
            )
            return False

    def following(self, container_id: str) -> bool:
        return container_id in self._followed or container_id in self._streamed

    # ------------------------------------------------------------------ metrics
    def state(self) -> dict[str, float]:
        files = 0
        lag = 0
        for followed in self._followed.values():
            files += followed.follower.open_files
            lag += followed.follower.lag_bytes()
        watcher = self._watcher
        return {
            "files_watched": files,
            "containers_followed": len(self._followed) + len(self._streamed),
            "containers_unfollowed": len(self._unfollowed),
            "lag_bytes": lag,
            "queue_bytes": self._queued_bytes,
            "store_bytes": self._store_bytes,
            "store_paused": 1.0 if self._paused else 0.0,
            "polled_containers": len(watcher.polled()) if watcher is not None else 0,
            "read_chunk_bytes": self._read_size(),
        }


def _log_failure(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("log store update failed", extra={"error": repr(task.exception())})
