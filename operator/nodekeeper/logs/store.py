"""The local log store: stored records and the checkpoints that produced them, in one SQLite file.

Why this shape: a row per line with an index stores ~190k lines/s here, a row per batch holding
one zstd block ~330k lines/s in a third of the disk. So a batch becomes one ``blocks`` row (its
records joined by newlines, zstd-compressed) and the batch's :class:`Checkpoint` is upserted in
the same transaction: after any crash the store holds exactly the records before each stored
checkpoint, so reading resumes there and nothing is lost or stored twice.

Durability: WAL with ``synchronous=NORMAL`` (the default) survives a crash of the process, which
is the requirement; ``sync="full"`` fsyncs every commit and survives power loss as well.

Errors (callers never see :mod:`sqlite3` exceptions)::

    StoreError                  anything else the database refused (the message says what)
    ├── StoreFullError          the filesystem is full: the transaction was rolled back; pause
    │                           reading and retry the same batches once space is freed
    ├── StoreVersionError       the file was written by a newer schema (or is not a log store)
    └── StoreCorruptError       SQLite reports corruption: move the file aside and start anew

Threading: one writer connection guarded by a lock; every method blocks, so call them from a
worker thread (``asyncio.to_thread``), never on the event loop. Readers (``nodekeeper logs``)
open their own read-only connection, see :mod:`nodekeeper.logs.query`.
"""

import base64
import contextlib
import dataclasses
import errno
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import orjson
import zstandard

from nodekeeper.logs.records import Batch, Checkpoint, ContainerInfo, FilePosition

STORE_FILE = "logs.db"  # the store's file name in the state directory
PAGE_SIZE = 4096  # measured with bench/logs_store.py: 16 and 64 KiB were no faster, only bigger
WAL_LIMIT_BYTES = 16 * 1024 * 1024  # the WAL file is truncated back to this after a checkpoint
BUSY_TIMEOUT_SECONDS = 5.0
RETENTION_STEP_BLOCKS = 256  # blocks deleted per transaction, so writes interleave
VACUUM_STEP_PAGES = 2048  # pages handed back to the filesystem per transaction


class StoreError(Exception):
    """The log store failed; the message names the file and what to do."""


class StoreFullError(StoreError):
    """No space left for the store: nothing of the failed call was kept."""


class StoreVersionError(StoreError):
    """The store's schema is not one this agent can use."""


class StoreCorruptError(StoreError):
    """SQLite found the file damaged."""


# MIGRATIONS[n] takes a store from schema version n to n + 1; version 0 is an empty file.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        """CREATE TABLE containers (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            image TEXT NOT NULL,
            labels TEXT NOT NULL,
            namespace TEXT NOT NULL,
            pod TEXT NOT NULL,
            workload TEXT NOT NULL,
            first_seen_ns INTEGER NOT NULL,
            removed_ns INTEGER
        )""",
        """CREATE TABLE blocks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            container_id TEXT NOT NULL,
            first_ns INTEGER NOT NULL,
            last_ns INTEGER NOT NULL,
            lines INTEGER NOT NULL,
            raw_bytes INTEGER NOT NULL,
            stored_bytes INTEGER NOT NULL,
            data BLOB NOT NULL
        )""",
        "CREATE INDEX blocks_by_container ON blocks (container_id, id)",
        "CREATE INDEX blocks_by_last_ns ON blocks (last_ns)",
        "CREATE TABLE checkpoints (container_id TEXT PRIMARY KEY, data BLOB NOT NULL)",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)
# AUTOINCREMENT: block ids are never reused, even after retention deletes the newest blocks, so a
# query cursor (block id, line) taken earlier never points into different records later.


@dataclasses.dataclass(frozen=True)
class WriteResult:
    blocks: int
    lines: int
    raw_bytes: int  # records as stored, uncompressed (with their newlines)
    stored_bytes: int  # after compression


@dataclasses.dataclass(frozen=True)
class RetentionResult:
    blocks_deleted: int
    bytes_deleted: int  # compressed bytes of the deleted blocks


class LogStore:
    """The agent's writer of the log store at ``path`` (a file; its directory is created)."""

    def __init__(
        self,
        path: Path,
        *,
        sync: Literal["normal", "full"] = "normal",
        compression_level: int = 1,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if sync not in ("normal", "full"):
            raise ValueError(f"sync must be 'normal' or 'full', not {sync!r}")
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._compressor = zstandard.ZstdCompressor(level=compression_level)
        self._compressing = threading.Lock()  # a zstd context serves one thread at a time
        # Container rows as last committed: the pipeline passes every container with every
        # write, and rewriting unchanged rows costs more than storing a small batch.
        self._described: dict[str, ContainerInfo] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _translate_os(e, doing=f"creating the directory of {self.path}") from e
        with translating(self.path, "opening the log store"):
            self._db = sqlite3.connect(
                self.path,
                isolation_level=None,  # transactions are explicit: BEGIN IMMEDIATE ... COMMIT
                check_same_thread=False,  # used from worker threads, one at a time (the lock)
                timeout=BUSY_TIMEOUT_SECONDS,
            )
        try:
            with translating(self.path, "opening the log store"):
                self._prepare(sync)
        except BaseException:
            self._db.close()
            raise

    def _prepare(self, sync: str) -> None:
        db = self._db
        version = read_schema_version(db, self.path)
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"the log store {self.path} has schema version {version}, newer than the "
                f"{SCHEMA_VERSION} this agent knows: a newer nodekeeper wrote it. Run that "
                "version, or move the file aside to start an empty store."
            )
        if version == 0:
            # Both settle the file's layout, so they must come before the first table.
            db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(
                f"the log store {self.path} cannot use WAL mode (got {mode!r}): put it on a "
                "local filesystem that supports shared memory."
            )
        db.execute(f"PRAGMA synchronous = {sync.upper()}")
        db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
        for step in range(version, SCHEMA_VERSION):
            with self._transaction():
                if read_schema_version(db, self.path) != step:
                    continue  # another process migrated it meanwhile
                for statement in MIGRATIONS[step]:
                    db.execute(statement)
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(step + 1),),
                )

    def close(self) -> None:
        with self._lock, translating(self.path, "closing the log store"):
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (SQLITE_FULL included)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (it does on some SQLITE_FULL paths).
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise

    def write(self, batches: Sequence[Batch], containers: Sequence[ContainerInfo]) -> WriteResult:
        """Store the batches' records and move their checkpoints, all or nothing.

        Each non-empty batch becomes one block; each container's checkpoint becomes the one of
        its last batch, even of a batch without records. On :class:`StoreFullError` nothing was
        kept: retry with the same batches.
        """
        # Compression and encoding happen before the lock: zstd releases the GIL meanwhile.
        blocks: list[tuple[str, int, int, int, int, int, bytes]] = []
        moved: dict[str, bytes] = {}
        lines = raw_total = stored_total = 0
        now = self._clock()
        for batch in batches:
            if batch.records:
                raw = b"\n".join(batch.records) + b"\n"
                with self._compressing:
                    data = self._compressor.compress(raw)
                first, last = sorted((batch.first_ns, batch.last_ns))
                if not last:
                    # Only records without a Docker time (malformed: stamped when read). Time 0
                    # would put them before every time filter and let retention delete them
                    # as decades old at its next run.
                    first = last = now
                blocks.append(
                    (batch.container_id, first, last, len(batch.records), len(raw), len(data), data)
                )
                lines += len(batch.records)
                raw_total += len(raw)
                stored_total += len(data)
            moved[batch.checkpoint.container_id] = encode_checkpoint(batch.checkpoint)
        doing = "writing logs to the store"
        with self._lock, translating(self.path, doing):
            changed = [info for info in containers if self._described.get(info.id) != info]
            described = {info.id: info for info in containers}
            # Lines of a container discovery did not describe still get a row, to query by id.
            unknown = ({b[0] for b in blocks} | moved.keys()) - described.keys()
            unknown -= self._described.keys()
            with self._transaction() as db:
                _upsert_containers(db, [(*_container_row(info), now) for info in changed])
                db.executemany(
                    "INSERT OR IGNORE INTO containers (id, name, image, labels, namespace, pod,"
                    " workload, first_seen_ns) VALUES (?, '', '', '{}', '', '', '', ?)",
                    [(container_id, now) for container_id in sorted(unknown)],
                )
                _insert_blocks(db, blocks)
                _upsert_checkpoints(db, list(moved.items()))
            self._described.update(described)
        return WriteResult(len(blocks), lines, raw_total, stored_total)

    def checkpoints(self) -> dict[str, Checkpoint]:
        """The committed checkpoint of every container still followed."""
        with self._lock, translating(self.path, "reading checkpoints"):
            rows = self._db.execute("SELECT container_id, data FROM checkpoints").fetchall()
        result: dict[str, Checkpoint] = {}
        for container_id, data in rows:
            try:
                result[container_id] = decode_checkpoint(container_id, bytes(data))
            except (ValueError, KeyError, TypeError) as e:
                raise StoreCorruptError(
                    f"the checkpoint of container {container_id} in {self.path} is unreadable "
                    f"({e}): move the store aside to start anew."
                ) from e
        return result

    def forget(self, container_id: str, removed_ns: int) -> None:
        """The container is gone: drop its checkpoint; its blocks stay until retention."""
        with (
            self._lock,
            translating(self.path, "forgetting a container"),
            self._transaction() as db,
        ):
            self._described.clear()
            db.execute("DELETE FROM checkpoints WHERE container_id = ?", (container_id,))
            db.execute(
                "UPDATE containers SET removed_ns = ? WHERE id = ?", (removed_ns, container_id)
            )

    def enforce_retention(
        self, max_age_seconds: float, max_bytes: int, now_ns: int
    ) -> RetentionResult:
        """Delete blocks older than the age, then the oldest until the store fits ``max_bytes``.

        Works in short transactions so writes go on in between, then hands freed pages back to
        the filesystem. Checkpoints are never deleted.
        """
        oldest_kept_ns = now_ns - int(max_age_seconds * 1_000_000_000)
        blocks = stored = 0
        while True:  # by age
            deleted, freed = self._delete_step(
                "SELECT id FROM blocks WHERE last_ns < ? ORDER BY last_ns LIMIT ?",
                (oldest_kept_ns, RETENTION_STEP_BLOCKS),
            )
            blocks, stored = blocks + deleted, stored + freed
            if deleted < RETENTION_STEP_BLOCKS:
                break
        while self.used_bytes() > max_bytes:  # by size, oldest first
            deleted, freed = self._delete_step(
                "SELECT id FROM blocks ORDER BY last_ns LIMIT ?",
                (self._blocks_to_free(max_bytes),),
            )
            blocks, stored = blocks + deleted, stored + freed
            if deleted == 0:
                break  # only checkpoints and metadata are left
        with self._lock, translating(self.path, "applying retention"), self._transaction() as db:
            self._described.clear()  # rows may go: write() must not count on them
            db.execute(
                "DELETE FROM containers WHERE removed_ns IS NOT NULL AND NOT EXISTS"
                " (SELECT 1 FROM blocks WHERE blocks.container_id = containers.id)"
            )
        self._hand_back_free_pages()
        return RetentionResult(blocks, stored)

    def _blocks_to_free(self, max_bytes: int) -> int:
        """How many of the oldest blocks to delete next: about the excess, at most a step."""
        excess = self.used_bytes() - max_bytes
        with self._lock, translating(self.path, "applying retention"):
            average = self._db.execute("SELECT avg(stored_bytes) FROM blocks").fetchone()[0]
        if not average:
            return 1
        return max(1, min(RETENTION_STEP_BLOCKS, int(excess / average) + 1))

    def _delete_step(self, select: str, args: tuple[int, ...]) -> tuple[int, int]:
        with self._lock, translating(self.path, "applying retention"), self._transaction() as db:
            rows = db.execute(
                f"DELETE FROM blocks WHERE id IN ({select}) RETURNING stored_bytes", args
            ).fetchall()
        return len(rows), sum(row[0] for row in rows)

    def _hand_back_free_pages(self) -> None:
        while True:
            with self._lock, translating(self.path, "returning free space"):
                free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
                if not free:
                    # Copy the WAL into the file now, so the shrunk file reaches the disk.
                    self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    return
                with self._transaction() as db:
                    db.execute(f"PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})").fetchall()

    def used_bytes(self) -> int:
        """Bytes of the database in use: its pages minus the free ones."""
        with self._lock, translating(self.path, "measuring the store"):
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
            size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def size_bytes(self) -> int:
        """Bytes the store takes on disk: the database, its WAL and shared-memory files."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(f"{self.path}{suffix}").st_blocks * 512
        return total


def _container_row(info: ContainerInfo) -> tuple[Any, ...]:
    labels = orjson.dumps(dict(info.labels), option=orjson.OPT_SORT_KEYS).decode()
    return (info.id, info.name, info.image, labels, info.namespace, info.pod, info.workload)


# The three writes of one transaction, apart so a test can fail one of them.
def _upsert_containers(db: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    db.executemany(
        "INSERT INTO containers (id, name, image, labels, namespace, pod, workload, first_seen_ns)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
        " image = excluded.image, labels = excluded.labels, namespace = excluded.namespace,"
        " pod = excluded.pod, workload = excluded.workload",
        rows,
    )


def _insert_blocks(db: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    db.executemany(
        "INSERT INTO blocks (container_id, first_ns, last_ns, lines, raw_bytes, stored_bytes,"
        " data) VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def _upsert_checkpoints(db: sqlite3.Connection, rows: Sequence[tuple[str, bytes]]) -> None:
    db.executemany(
        "INSERT INTO checkpoints (container_id, data) VALUES (?, ?)"
        " ON CONFLICT (container_id) DO UPDATE SET data = excluded.data",
        rows,
    )


def read_schema_version(db: sqlite3.Connection, path: Path) -> int:
    """The store's schema version; 0 for an empty file. Raises on a file that is not a store."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return 0
    if "meta" not in tables:
        raise StoreVersionError(
            f"{path} is an SQLite database but not a nodekeeper log store: point the agent "
            "at another path, or move the file aside."
        )
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    try:
        return int(row[0])
    except (TypeError, ValueError) as e:
        raise StoreCorruptError(
            f"the log store {path} records no usable schema version ({row!r}): move it aside."
        ) from e


# Checkpoints are stored as JSON; bytes (fingerprints, pending partials) as base64.
def encode_checkpoint(checkpoint: Checkpoint) -> bytes:
    return orjson.dumps(
        {
            "v": 1,
            "position": _encode_position(checkpoint.position),
            "pending": {k: _b64(v) for k, v in checkpoint.pending.items()},
            "newer": [_encode_position(p) for p in checkpoint.newer],
        }
    )


def decode_checkpoint(container_id: str, data: bytes) -> Checkpoint:
    raw = orjson.loads(data)
    if not isinstance(raw, dict) or raw.get("v") != 1:
        raise ValueError("not a version 1 checkpoint")
    pending: Mapping[str, Any] = raw["pending"]
    return Checkpoint(
        container_id=container_id,
        position=_decode_position(raw["position"]),
        pending={k: base64.b64decode(v) for k, v in pending.items()},
        newer=tuple(_decode_position(p) for p in raw["newer"]),
    )


def _encode_position(position: FilePosition) -> dict[str, Any]:
    return {
        "path": position.path,
        "device": position.device,
        "inode": position.inode,
        "fingerprint": _b64(position.fingerprint),
        "offset": position.offset,
        "final_size": position.final_size,
    }


def _decode_position(raw: Mapping[str, Any]) -> FilePosition:
    final_size = raw["final_size"]
    return FilePosition(
        path=str(raw["path"]),
        device=int(raw["device"]),
        inode=int(raw["inode"]),
        fingerprint=base64.b64decode(raw["fingerprint"]),
        offset=int(raw["offset"]),
        final_size=None if final_size is None else int(final_size),
    )


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


@contextlib.contextmanager
def translating(path: Path, doing: str) -> Iterator[None]:
    """Turn sqlite3 (and file system) errors into the StoreError tree."""
    try:
        yield
    except sqlite3.Error as e:
        raise translate(e, path=path, doing=doing) from e
    except OSError as e:
        raise _translate_os(e, doing=f"{doing} ({path})") from e


def translate(error: sqlite3.Error, *, path: Path, doing: str) -> StoreError:
    code = getattr(error, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    if primary == sqlite3.SQLITE_FULL or (primary == sqlite3.SQLITE_IOERR and _no_space(path)):
        return StoreFullError(
            f"{doing}: no space left for the log store {path} ({error}); nothing was kept. "
            "Free space or lower the retention size; the write is retried."
        )
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StoreCorruptError(
            f"{doing}: the log store {path} is damaged ({error}): move it aside; the agent "
            "starts an empty one."
        )
    if primary == sqlite3.SQLITE_CANTOPEN:
        return StoreError(f"{doing}: cannot open the log store {path} ({error}).")
    if primary == sqlite3.SQLITE_BUSY:
        return StoreError(
            f"{doing}: the log store {path} stayed locked for {BUSY_TIMEOUT_SECONDS:g} s "
            f"({error}): is another agent writing to it?"
        )
    return StoreError(f"{doing}: the log store {path} failed: {error}")


def _translate_os(error: OSError, *, doing: str) -> StoreError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreFullError(f"{doing}: no space left ({error}).")
    return StoreError(f"{doing}: {error}")


def _no_space(path: Path) -> bool:
    """Whether an I/O error is likely ENOSPC: SQLite reports some of those as SQLITE_IOERR."""
    try:
        stat = os.statvfs(path.parent)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < 2 * PAGE_SIZE
