"""Wake the log pipeline when a container's files change, with one inotify instance per root.

One watch on Docker's root (``/var/lib/docker/containers``) reports container directories that
appear or vanish, so new containers are found without rescans; one watch per followed container
directory reports its log appended, rotated or removed and its config files replaced.

Iterating a :class:`Watcher` yields sets of :class:`Changed`. Each set is everything the kernel
had queued when the pipeline asked, deduplicated: a container writing 10k lines a second costs
one ``data`` notification per loop turn, not one object per write.

=========================  ==================================================================
``Changed(id, "new")``     a directory ``<root>/<id>`` appeared (created or moved in)
``Changed(id, "data")``    its json-file log was written, rotated, created or deleted
``Changed(id, "config")``  config.v2.json or hostconfig.json was replaced or rewritten
``Changed(id, "gone")``    its directory was removed (its watch is released)
``Changed(None, "new")``   events were lost (queue overflow): rescan the root
``Changed(None, "gone")``  the root itself was removed or unmounted: nothing more will come
=========================  ==================================================================

Watches are bounded: past ``max_watches`` container watches, or when the kernel refuses one
(``ENOSPC``: ``fs.inotify.max_user_watches`` is per user, shared with every other process of
that uid on the node), a container falls back to polling. The pipeline reads every container in
:meth:`Watcher.polled` on its own timer; :attr:`Watcher.fallbacks` counts the fallbacks. When a
watch is released, the oldest polled container is promoted back to a watch (announced with a
``data`` notification, so whatever was written since the last poll is read).

Errors: :class:`WatchError` (the root cannot be watched) is the only exception raised here;
every per-container failure turns into polling or a ``gone`` notification.
"""

import asyncio
import contextlib
import dataclasses
import errno
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Self

from asyncinotify import Event, Inotify, Mask, Watch

from nodekeeper.logs.discovery import CONFIG_FILES

logger = logging.getLogger(__name__)

Kind = Literal["data", "config", "gone", "new"]
AddResult = Literal["watched", "polled", "gone"]

ROOT_MASK = (
    Mask.CREATE
    | Mask.MOVED_TO
    | Mask.DELETE
    | Mask.MOVED_FROM
    | Mask.DELETE_SELF
    | Mask.MOVE_SELF
    | Mask.ONLYDIR
)
CONTAINER_MASK = (
    Mask.MODIFY
    | Mask.CREATE
    | Mask.MOVED_FROM
    | Mask.MOVED_TO
    | Mask.DELETE
    | Mask.DELETE_SELF
    | Mask.CLOSE_WRITE
    | Mask.ONLYDIR
)
# dockerd replaces its config files by rename (MOVED_TO); a direct writer is done at CLOSE_WRITE.
# MODIFY on a config file is a write in progress: reading it then would see half a file.
_CONFIG_DONE = Mask.MOVED_TO | Mask.CLOSE_WRITE
_GONE_FROM_ROOT = Mask.DELETE | Mask.MOVED_FROM
_NEW_IN_ROOT = Mask.CREATE | Mask.MOVED_TO

# One drain reads at most this many events before yielding, so a flood cannot hold the loop.
# It is the kernel's default fs.inotify.max_queued_events: a full queue is drained in one turn.
DRAIN_LIMIT = 16384
_READ_EVENTS = 256  # events per read(2) (asyncinotify's cache_size, in full-size events)


class WatchError(Exception):
    """The root cannot be watched (missing, not a directory, no inotify left)."""


@dataclasses.dataclass(frozen=True)
class Changed:
    container_id: str | None  # None: the root itself
    kind: Kind


class Watcher:
    """inotify over Docker's root and the followed container directories, with a polling fallback.

    One consumer iterates it (``async for changes in watcher``); :meth:`add` and :meth:`remove`
    may be called at any time from the same event loop. Use it as a context manager or call
    :meth:`close`.
    """

    def __init__(
        self,
        root: Path,
        max_watches: int,
        *,
        drain_limit: int = DRAIN_LIMIT,
        pace: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.root = root
        # Seconds between two batches, asked before each: 0 hands out events as they come.
        self._pace = pace
        self._handed_at: float | None = None
        self.max_watches = max_watches
        self.drain_limit = drain_limit
        self.fallbacks = 0  # containers that could not get a watch and are polled instead
        self.overflows = 0  # kernel queue overflows (every watched container was reported)
        self._watched: dict[str, Watch] = {}
        self._by_wd: dict[int, str] = {}
        self._polled: dict[str, None] = {}  # insertion-ordered: the oldest is promoted first
        self._pending: set[Changed] = set()
        self._waiter: asyncio.Future[None] | None = None
        self._waiter_loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        # sync_timeout=0 makes sync_get() a non-blocking poll: the drain reads what is queued.
        self._inotify = Inotify(cache_size=_READ_EVENTS, sync_timeout=0)
        try:
            self._root_watch: Watch | None = self._inotify.add_watch(root, ROOT_MASK)
        except OSError as e:
            self._inotify.close()
            raise WatchError(f"cannot watch {root}: {e.strerror or e}") from e

    # -- the followed set

    def add(self, container_id: str) -> AddResult:
        """Watch ``<root>/<container_id>``; past the limit, poll it. Idempotent."""
        if container_id in self._watched:
            return "watched"
        if container_id in self._polled:
            return "polled"
        if len(self._watched) >= self.max_watches:
            return self._fall_back(container_id, f"the limit of {self.max_watches} watches")
        try:
            self._watch(container_id)
        except (FileNotFoundError, NotADirectoryError):
            self._notify(Changed(container_id, "gone"))
            return "gone"
        except OSError as e:
            # ENOSPC: max_user_watches reached; anything else (EACCES, ...) polls the same way
            reason = "fs.inotify.max_user_watches" if e.errno == errno.ENOSPC else str(e)
            return self._fall_back(container_id, reason)
        return "watched"

    def remove(self, container_id: str) -> None:
        """Stop watching or polling a container (a no-op for an unknown one)."""
        self._polled.pop(container_id, None)
        watch = self._watched.pop(container_id, None)
        if watch is None:
            return
        del self._by_wd[watch.wd]
        if not self._closed:
            # EINVAL: the kernel dropped it already (directory removed) and IGNORED is queued
            with contextlib.suppress(OSError):
                self._inotify.rm_watch(watch)
        self._promote()

    def polled(self) -> set[str]:
        """Containers the pipeline must read on its timer: no inotify watch covers them."""
        return set(self._polled)

    def fileno(self) -> int:
        """The inotify descriptor (``/proc/self/fdinfo/<fd>`` lists its kernel watches)."""
        return self._inotify.fd

    def _watch(self, container_id: str) -> None:
        watch = self._inotify.add_watch(self.root / container_id, CONTAINER_MASK)
        self._watched[container_id] = watch
        self._by_wd[watch.wd] = container_id

    def _fall_back(self, container_id: str, reason: str) -> AddResult:
        self._polled[container_id] = None
        self.fallbacks += 1
        logger.warning("container %s is polled, not watched: %s", container_id[:12], reason)
        return "polled"

    def _promote(self) -> None:
        while self._polled and len(self._watched) < self.max_watches and not self._closed:
            container_id = next(iter(self._polled))
            try:
                self._watch(container_id)
            except (FileNotFoundError, NotADirectoryError):
                del self._polled[container_id]
                self._notify(Changed(container_id, "gone"))
                continue
            except OSError:
                return  # still refused: it stays polled
            del self._polled[container_id]
            self._notify(Changed(container_id, "data"))  # what was written since the last poll

    # -- notifications

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> frozenset[Changed]:
        loop = asyncio.get_running_loop()
        pace = self._pace()
        if pace > 0 and self._handed_at is not None:
            # Pacing: the kernel queues (and merges) what comes meanwhile, and one loop turn
            # takes it all, instead of one turn per write of every container.
            rest = self._handed_at + pace - loop.time()
            if rest > 0:
                await asyncio.sleep(rest)
        while not self._closed:
            emptied = self._drain()
            if self._pending:
                changes = frozenset(self._pending)
                self._pending = set()
                self._handed_at = loop.time()
                return changes
            if emptied:
                await self._readable()
            else:
                # Events may be left in asyncinotify's buffer, where the fd cannot signal them;
                # let the loop run, then drain on.
                await asyncio.sleep(0)
        raise StopAsyncIteration

    def _notify(self, change: Changed) -> None:
        self._pending.add(change)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _readable(self) -> None:
        # The reader is registered only while waiting: a registered, readable fd would wake the
        # loop on every turn while the consumer is busy elsewhere.
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        fd = self._inotify.fd
        self._waiter, self._waiter_loop = waiter, loop
        loop.add_reader(fd, _resolve, waiter)
        try:
            await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = self._waiter_loop = None
                loop.remove_reader(fd)

    def _drain(self) -> bool:
        """Absorb what is queued, up to the limit; whether the queue was emptied."""
        for _ in range(self.drain_limit):
            event = self._inotify.sync_get()
            if event is None:
                return True
            self._absorb(event)
        return False

    def _absorb(self, event: Event) -> None:
        mask = event.mask
        if Mask.Q_OVERFLOW in mask:
            self.overflows += 1
            logger.warning("inotify queue overflowed: reading every followed container")
            self._pending.add(Changed(None, "new"))
            for watched_id in self._watched:
                self._pending.add(Changed(watched_id, "data"))
                self._pending.add(Changed(watched_id, "config"))
            return
        watch = event.watch
        if watch is None:
            return
        if watch is self._root_watch:
            self._absorb_root(event, mask)
            return
        container_id = self._by_wd.get(watch.wd)
        if container_id is None:
            return  # a watch we removed: its IGNORED arrives after the fact
        if Mask.IGNORED in mask:
            # The kernel released the watch (directory deleted, filesystem unmounted);
            # asyncinotify forgets it on this same event.
            del self._by_wd[watch.wd]
            del self._watched[container_id]
            self._pending.add(Changed(container_id, "gone"))
            self._promote()
            return
        if Mask.DELETE_SELF in mask:
            self._pending.add(Changed(container_id, "gone"))
            return
        if event.name is None:
            return
        name = str(event.name)
        if name.startswith(f"{container_id}-json.log"):
            self._pending.add(Changed(container_id, "data"))
        elif name in CONFIG_FILES and mask & _CONFIG_DONE:
            self._pending.add(Changed(container_id, "config"))

    def _absorb_root(self, event: Event, mask: Mask) -> None:
        if mask & (Mask.IGNORED | Mask.DELETE_SELF | Mask.MOVE_SELF):
            if Mask.IGNORED in mask:
                self._root_watch = None
            logger.warning("%s was removed or unmounted: no new containers will be seen", self.root)
            self._pending.add(Changed(None, "gone"))
            return
        if event.name is None or Mask.ISDIR not in mask:
            return
        container_id = str(event.name)
        if mask & _NEW_IN_ROOT:
            self._pending.add(Changed(container_id, "new"))
        elif mask & _GONE_FROM_ROOT:
            self._pending.add(Changed(container_id, "gone"))
            if Mask.MOVED_FROM in mask:
                self.remove(container_id)  # moved away, not deleted: no IGNORED will come

    # -- lifetime

    def close(self) -> None:
        """Release every watch and the descriptor; a waiting iteration ends."""
        if self._closed:
            return
        self._closed = True
        waiter, loop = self._waiter, self._waiter_loop
        if waiter is not None and loop is not None:
            loop.remove_reader(self._inotify.fd)  # before the fd number can be reused
            self._waiter = self._waiter_loop = None
            if not waiter.done():
                waiter.set_result(None)
        self._inotify.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
