"""Reading one container's json-file log, every line exactly once, whatever dockerd does to it.

The follower holds an open fd for each file of the container's *chain*: the file being read and
every newer file it has seen, oldest first. dockerd rotates by renaming and deletes the oldest
file when ``max-file`` is reached; the fds keep the bytes of a deleted file readable, so while the
agent runs nothing is lost however far reading lags, as long as :meth:`Follower.refresh` runs
between two rotations' deletions (the pipeline calls it on inotify events; :meth:`Follower.read`
also calls it when it reaches the end of the newest file).

Across a restart the chain lives on in the :class:`~.records.Checkpoint`: the file and offset
reached, plus the newer files already seen. On resume each is found again by identity and first
bytes (it may now be ``.1``, ``.2`` or ``.1.gz``); what dockerd deleted meanwhile is counted, in
bytes when its final size was known, as a lost file when not.

Only complete lines reach the parser; the unfinished tail stays in the file (the offset does not
pass it) and is read again next time. A tail that will never get its newline is handed over on
its own: when its file is final (rotated away, removed, or :meth:`Follower.seal` was called), or
when it grows past a bound, so memory stays bounded whatever a container writes.

    read offset  ------------------------------------------------>  (runs ahead)
    durable offset (committed by the pipeline after the store) -->  (lag, drain)
"""

import collections
import dataclasses
import logging
import os
from collections.abc import Callable

from nodekeeper.logs.files import LogFile, rotated_path
from nodekeeper.logs.parsing import JsonFileParser, Parsed
from nodekeeper.logs.records import (
    FINGERPRINT_BYTES,
    Batch,
    Checkpoint,
    ContainerInfo,
    FilePosition,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_LINE_BYTES = 256 * 1024


@dataclasses.dataclass
class FollowerCounters:
    """Running totals of one follower, read by metrics."""

    rotations: int = 0  # rotated files followed to their end
    truncations: int = 0  # files found shorter than the read offset (copytruncate) or rewritten
    lost_bytes: int = 0  # bytes deleted or truncated away before they were read
    lost_files: int = 0  # files deleted unread whose size was never seen
    bytes_read: int = 0  # file bytes consumed (handed to the parser)


@dataclasses.dataclass
class _Link:
    """One file of the chain and how far it has been read."""

    file: LogFile
    fingerprint: bytes
    offset: int = 0
    final: bool = False  # dockerd writes no more to it (rotated away, removed, or sealed)
    seen_size: int = 0  # the largest size observed: what a truncation took away


class Follower:
    """The reader of one container's json-file log (synchronous; bounded reads).

    Use as a context manager, or call :meth:`close`: every fd of the chain stays open until then.
    """

    def __init__(
        self,
        info: ContainerInfo,
        parser: JsonFileParser,
        checkpoint: Checkpoint | None,
        *,
        read_from_head: bool = True,
        chunk_bytes: int = 1 << 20,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be positive: {chunk_bytes}")
        self.info = info
        self.parser = parser
        self.counters = FollowerCounters()
        self._live = info.log_path
        self._max_files = max(info.max_files, 1)
        self._chunk_bytes = chunk_bytes
        # Past this, a tail without a newline is no json-file record Docker would write
        # (dockerd splits lines at 16 KiB): it is handed over as it is.
        self._tail_bound = 4 * max_line_bytes + 64 * 1024
        self._chain: list[_Link] = []
        self._gone = False  # the container's directory is deleted
        self._sealed = False
        self._consumed = 0  # file bytes consumed since start
        self._durable = 0  # ... of which the pipeline has committed
        self._in_flight: collections.deque[tuple[Checkpoint, int]] = collections.deque()
        try:
            if checkpoint is not None:
                self._resume(checkpoint)
            elif read_from_head:
                self._start_at_head()
            else:
                self._start_at_end()
            self.refresh()
        except BaseException:
            self.close()
            raise

    # --- starting points ---

    def _start_at_head(self) -> None:
        for file, fingerprint in reversed(self._open_newest_first()):
            self._append(file, fingerprint)

    def _start_at_end(self) -> None:
        file = LogFile.open(self._live)
        if file is None:
            return
        link = self._append(file, file.fingerprint())
        link.offset = self._after_last_newline(file, file.size())

    def _after_last_newline(self, file: LogFile, size: int) -> int:
        """Where the last complete line ends (or `size` when none is near): a clean start."""
        start = max(size - self._tail_bound, 0)
        cut = file.pread(size - start, start).rfind(b"\n")
        return start + cut + 1 if cut >= 0 else size

    def _resume(self, checkpoint: Checkpoint) -> None:
        present = list(reversed(self._open_newest_first()))
        known = [checkpoint.position, *checkpoint.newer]
        # The first known file still there, oldest first; the ones before it are lost.
        start = 0
        resumed: int | None = None  # its index in `known`
        for index, position in enumerate(known):
            found = next((i for i, (file, _) in enumerate(present) if file.matches(position)), None)
            if found is not None:
                start, resumed = found, index
                break
            self._count_lost(position, position.offset if index == 0 else 0)
        # Without any, every file still there is newer than what was lost: dockerd deletes the
        # oldest first.
        for file, _ in present[:start]:
            file.close()  # older than the checkpoint: read before
        for file, fingerprint in present[start:]:
            self._append(file, fingerprint)
        if resumed is None:
            return
        if resumed == 0:
            self._chain[0].offset = checkpoint.position.offset
        # Known files after the one resumed from follow it in order; a missing one is lost.
        after = 1
        for position in known[resumed + 1 :]:
            found = next(
                (
                    i
                    for i in range(after, len(self._chain))
                    if self._chain[i].file.matches(position)
                ),
                None,
            )
            if found is None:
                self._count_lost(position, 0)
            else:
                after = found + 1

    def _count_lost(self, position: FilePosition, offset: int) -> None:
        if position.final_size is not None:
            lost = max(position.final_size - offset, 0)
            self.counters.lost_bytes += lost
            if lost:
                logger.warning(
                    "Container %s: %d bytes of %s were deleted before they were read",
                    self.info.id[:12],
                    lost,
                    position.path,
                )
        else:
            self.counters.lost_files += 1
            logger.warning(
                "Container %s: %s was deleted before it was read to its end",
                self.info.id[:12],
                position.path,
            )

    def _open_newest_first(
        self, stop: Callable[[LogFile, bytes], bool] | None = None
    ) -> list[tuple[LogFile, bytes]]:
        """Open the live file, ``.1``, ``.2``, ... in that order, with their fingerprints.

        Newest first, because a rotation during the walk moves files towards higher indexes, the
        way the walk goes: a file can be met twice (skipped by identity) but never jumped over.
        A file created meanwhile is newer than all and found by the next refresh. Stops before
        the first file for which `stop` is true (closing it).
        """
        opened: list[tuple[LogFile, bytes]] = []
        try:
            index = 0
            while True:
                exists = False
                for compressed in (False, True) if index else (False,):
                    file = LogFile.open(rotated_path(self._live, index, compressed=compressed))
                    if file is None:
                        continue
                    exists = True
                    fingerprint = file.fingerprint()
                    if any(file.same_file(other, fp) for other, fp in opened):
                        file.close()  # met twice: moved by a rotation, or being compressed
                        continue
                    if stop is not None and stop(file, fingerprint):
                        file.close()
                        return opened
                    opened.append((file, fingerprint))
                if not exists and index >= self._max_files - 1:
                    return opened
                index += 1
        except BaseException:
            for file, _ in opened:
                file.close()
            raise

    def _append(self, file: LogFile, fingerprint: bytes) -> _Link:
        for older in self._chain:
            older.final = True
        link = _Link(file, fingerprint, final=file.compressed)
        self._chain.append(link)
        return link

    # --- following dockerd ---

    def refresh(self) -> None:
        """Find files dockerd created since the last look; open them at once.

        One stat when nothing changed. When the live file is not the chain's newest, the files
        between (rotated twice or more since the last look) are found by identity, newest first.
        """
        try:
            stat = os.stat(self._live)
        except (FileNotFoundError, NotADirectoryError):
            stat = None
        if stat is None:
            # Renamed away (a rotation in progress) or removed with the container: either way
            # dockerd writes no more to the newest file.
            if self._chain:
                self._chain[-1].final = True
            self._gone = not os.path.isdir(os.path.dirname(self._live) or ".")
            return
        if self._chain and (stat.st_dev, stat.st_ino) == self._chain[-1].file.identity:
            return
        for link in self._chain:
            self._extend_fingerprint(link)
        known = [(link.file, link.fingerprint) for link in self._chain]
        newer = self._open_newest_first(
            lambda file, _: any(file.same_file(other, fp) for other, fp in known)
        )
        for file, fingerprint in reversed(newer):
            self._append(file, fingerprint)

    def seal(self) -> None:
        """The container has stopped for good (it is about to be removed): its live file gets no
        more bytes, so an unterminated last line and pending partials are stored when reached."""
        self._sealed = True
        if self._chain:
            self._chain[-1].final = True

    # --- reading ---

    def read(self, max_bytes: int, now_ns: int) -> Batch | None:
        """Records from at most about `max_bytes` of file (one line longer than that is still
        read whole, up to the tail bound), or None when nothing new."""
        records: list[bytes] = []
        first_ns = last_ns = 0
        consumed = 0
        refreshed = False

        def take(parsed: Parsed) -> None:
            nonlocal first_ns, last_ns
            records.extend(parsed.records)
            if parsed.first_ns and not first_ns:
                first_ns = parsed.first_ns
            if parsed.last_ns:
                last_ns = parsed.last_ns

        if not self._chain:
            self.refresh()  # no log file yet when this follower started
            refreshed = True
        if self._chain:
            self._check_rewritten(self._chain[0])
        while self._chain and consumed < max_bytes:
            link = self._chain[0]
            size = self._size(link)
            if size < link.offset and not link.file.compressed:
                self._truncated(link)
                continue
            if size > link.offset:
                used = self._read_lines(
                    link, size, max_bytes - consumed, not consumed, now_ns, take
                )
                if used:
                    consumed += used
                    continue
                if link.file.ended:
                    continue  # a gzip stream ended short of its stated size: now exact
                if link.final or refreshed:
                    break  # the rest of a line is still to come
                self.refresh()  # unless dockerd is done with this file
                refreshed = True
                continue
            # At the end of this file.
            if len(self._chain) > 1:
                self._leave(link)
                continue
            if link.final and (self._gone or self._sealed):
                if self.parser.pending:
                    take(self.parser.flush(now_ns))
                break
            if refreshed:
                break
            self.refresh()
            refreshed = True
        if not consumed and not records:
            return None
        self._consumed += consumed
        self.counters.bytes_read += consumed
        checkpoint = self._checkpoint()
        self._in_flight.append((checkpoint, self._consumed))
        return Batch(
            container_id=self.info.id,
            records=records,
            first_ns=first_ns,
            last_ns=last_ns,
            read_bytes=consumed,
            checkpoint=checkpoint,
        )

    def _read_lines(
        self,
        link: _Link,
        size: int,
        budget: int,
        first: bool,
        now_ns: int,
        take: Callable[[Parsed], None],
    ) -> int:
        """Hand the complete lines at the offset to the parser; the bytes consumed (0: none).

        Only the `first` read of a call may pass the budget, by one line longer than it.
        """
        available = size - link.offset
        want = min(available, self._chunk_bytes, budget)
        data = link.file.pread(want, link.offset)
        cut = data.rfind(b"\n") + 1
        if not cut and len(data) == want < available:
            # The next line is longer than this read: look for its end (only) as far as the
            # bound, and after the first read of a call no further than the budget.
            further = min(available, self._tail_bound if first else budget)
            if further <= want:
                return 0  # it does not fit in this call's budget
            data = link.file.pread(further, link.offset)
            cut = data.find(b"\n") + 1
        if cut:
            take(self.parser.parse(data[:cut] if cut < len(data) else data, now_ns))
        elif len(data) >= self._tail_bound:
            cut = self._tail_bound
            take(self.parser.parse_unterminated(data[:cut], now_ns))
        elif data and link.final and link.offset + len(data) >= self._size(link):
            cut = len(data)  # the file's last bytes, never to be finished
            take(self.parser.parse_unterminated(data, now_ns))
        link.offset += cut
        return cut

    def _leave(self, link: _Link) -> None:
        """Done with a rotated file: close it and go on with the next one."""
        if link.file.damaged:
            self.counters.lost_files += 1
            logger.warning(
                "Container %s: %s is damaged past byte %d; the rest is lost",
                self.info.id[:12],
                link.file.path,
                link.offset,
            )
        link.file.close()
        self._chain.pop(0)
        self.counters.rotations += 1

    def _size(self, link: _Link) -> int:
        if link.file.compressed and not link.file.ended:
            # The gzip trailer's size is a hint (modulo 4 GiB); the stream's end is the truth,
            # so ask for enough to find a line's end or the stream's.
            return max(link.file.size(), link.offset + self._chunk_bytes + self._tail_bound)
        size = link.file.size()
        link.seen_size = max(link.seen_size, size)
        return size

    def _check_rewritten(self, link: _Link) -> None:
        """A live file cut and written again past the offset is caught by its first bytes."""
        if link.final or link.file.compressed or not link.offset:
            return
        if link.file.pread(len(link.fingerprint), 0) != link.fingerprint:
            self._truncated(link)

    def _truncated(self, link: _Link) -> None:
        self.counters.truncations += 1
        lost = max(link.seen_size - link.offset, 0)
        self.counters.lost_bytes += lost
        logger.warning(
            "Container %s: %s was truncated at byte %d (%d unread bytes gone); reading from 0",
            self.info.id[:12],
            link.file.path,
            link.offset,
            lost,
        )
        link.offset = 0
        link.seen_size = 0
        link.fingerprint = link.file.fingerprint()

    def _extend_fingerprint(self, link: _Link) -> None:
        """A fingerprint taken from a young file grows with it (never changes: append-only)."""
        if len(link.fingerprint) >= FINGERPRINT_BYTES or link.file.compressed:
            return
        current = link.file.fingerprint()
        if current.startswith(link.fingerprint):
            link.fingerprint = current

    def _checkpoint(self) -> Checkpoint:
        for link in self._chain:
            self._extend_fingerprint(link)
        first, *newer = self._chain
        return Checkpoint(
            container_id=self.info.id,
            position=self._position(first, first.offset),
            pending=self.parser.pending,
            newer=tuple(self._position(link, 0) for link in newer),
        )

    def _position(self, link: _Link, offset: int) -> FilePosition:
        return FilePosition(
            path=link.file.path,
            device=link.file.device,
            inode=link.file.inode,
            fingerprint=link.fingerprint,
            offset=offset,
            final_size=link.file.size() if link.final else None,
        )

    # --- what the pipeline asks ---

    def committed(self, checkpoint: Checkpoint) -> None:
        """The batch that carried `checkpoint` (and every one before it) is durable."""
        for index, (sent, _) in enumerate(self._in_flight):
            if sent is checkpoint or sent == checkpoint:
                for _ in range(index):
                    self._in_flight.popleft()
                _, self._durable = self._in_flight.popleft()
                return

    def lag_bytes(self) -> int:
        """Bytes not yet durable: unread in the chain plus read but not committed."""
        unread = 0
        for position, link in enumerate(self._chain):
            size = (
                self._size(link) if position == 0 and not link.file.compressed else link.file.size()
            )
            unread += max(size - link.offset, 0) if position == 0 else size
        return unread + self._consumed - self._durable

    def drained(self) -> bool:
        """Everything the chain holds is read and durable: nothing unread, no unfinished line."""
        if self._in_flight or self.parser.pending:
            return False
        if len(self._chain) > 1:
            return False
        return not self._chain or self._size(self._chain[0]) <= self._chain[0].offset

    @property
    def open_files(self) -> int:
        return len(self._chain)

    def close(self) -> None:
        """Close every fd of the chain (idempotent)."""
        while self._chain:
            self._chain.pop().file.close()

    def __enter__(self) -> "Follower":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
