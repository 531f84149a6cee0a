"""Reading the log store: filter, page and follow stored lines without disturbing the writer.

A query opens its own read-only connection (``mode=ro``), so ``nodekeeper logs`` reads the store
of a running agent; WAL gives it a consistent snapshot while the agent keeps writing. Containers
are chosen through the ``containers`` table, blocks by container and time range, and only those
blocks are decompressed and their lines filtered.

Lines come in the order of storage: by block, then by line within the block, which is Docker's
order within each container. A cursor names a line (block id, line index); block ids are never
reused, so a cursor resumes exactly after its line, also after retention deleted blocks, and a
query repeated with its last cursor returns only lines stored since (``--follow``).

Errors are those of :mod:`nodekeeper.logs.store` (``StoreError`` and its subclasses); a bad
cursor or limit is a ``ValueError`` raised by :class:`LogQuery`.
"""

import contextlib
import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import zstandard

from nodekeeper.api.times import parse_ns
from nodekeeper.logs.records import Flag, StoredLine
from nodekeeper.logs.store import (
    SCHEMA_VERSION,
    LogStore,
    StoreCorruptError,
    StoreError,
    StoreVersionError,
    read_schema_version,
    translating,
)

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10000
BLOCKS_PER_FETCH = 16  # decompressed one at a time; fetched a few at a time
# A substring made only of these characters appears verbatim in the JSON of a line containing
# it (Go's encoder escapes quotes, backslashes, controls and <, >, &), so a raw byte search can
# rule a line out before it is parsed.
_VERBATIM = frozenset(chr(c) for c in range(0x20, 0x7F)) - set('"\\<>&')


@dataclasses.dataclass(frozen=True)
class LogQuery:
    """Which stored lines to return; unset filters match everything."""

    container: str | None = None  # a container id prefix or its name
    workload: str | None = None
    namespace: str | None = None
    pod: str | None = None
    stream: str | None = None  # stdout, stderr (unknown: malformed lines)
    since_ns: int | None = None  # Docker time, inclusive
    until_ns: int | None = None  # Docker time, exclusive
    contains: str | None = None  # a substring of the line's text
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None  # resume after this line (StoredLine.cursor, QueryPage cursors)

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, not {self.limit}")
        if self.cursor is not None:
            decode_cursor(self.cursor)


@dataclasses.dataclass(frozen=True)
class QueryPage:
    lines: list[StoredLine]
    next_cursor: str | None  # the next page; None when nothing more matched at query time
    # Where a later run of the same query resumes to see only lines stored since (follow mode):
    # after the last line returned, or after the last line looked at when none matched there.
    # None only when the store held no block to look at and the query had no cursor.
    resume_cursor: str | None = None


def encode_cursor(block_id: int, line: int) -> str:
    return f"{block_id:x}.{line:x}"


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        block, line = cursor.split(".")
        decoded = int(block, 16), int(line, 16)
    except ValueError:
        decoded = (-1, -1)
    if decoded[0] < 0 or decoded[1] < 0:
        raise ValueError(f"not a log cursor: {cursor!r} (pass the cursor a query returned)")
    return decoded


def container_lines(store: Path | LogStore, container: str) -> list[StoredLine]:
    """Every stored line of one container (id prefix or name), paging through the store."""
    lines: list[StoredLine] = []
    query = LogQuery(container=container, limit=MAX_LIMIT)
    while True:
        page = run_query(store, query)
        lines.extend(page.lines)
        if page.next_cursor is None:
            return lines
        query = dataclasses.replace(query, cursor=page.next_cursor)


def run_query(store: Path | LogStore, query: LogQuery) -> QueryPage:
    """Lines of the store (a path, or the agent's open store) matching ``query``, one page."""
    with _snapshot(store, "querying the log store") as (db, path):
        return _page(db, path, query)


@dataclasses.dataclass(frozen=True)
class CommittedBlock:
    """One block as the store committed it with its checkpoint: what a sink ships next."""

    id: int  # ascending in commit order, never reused: a sink's cursor is the last id it shipped
    container_id: str
    container_name: str
    labels: dict[str, str]
    first_ns: int
    last_ns: int
    records: list[bytes]  # json-file records as stored (see logs/records.py), in Docker's order


def committed_blocks(
    store: Path | LogStore, *, after_block: int, limit: int = BLOCKS_PER_FETCH
) -> list[CommittedBlock]:
    """Up to ``limit`` committed blocks with an id above ``after_block``, oldest first.

    The seam a log sink reads through: the store commits a block and its checkpoint in one
    transaction, and ids ascend in commit order (one writer), so a sink that remembers the last
    id it shipped resumes exactly after it. Ids that retention deleted are simply absent.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    with _snapshot(store, "reading committed log blocks") as (db, path):
        containers = {
            str(row[0]): (str(row[1]), orjson.loads(row[2]))
            for row in db.execute("SELECT id, name, labels FROM containers")
        }
        rows = db.execute(
            "SELECT id, container_id, first_ns, last_ns, data FROM blocks WHERE id > ? "
            "ORDER BY id LIMIT ?",
            (after_block, limit),
        ).fetchall()
        found = []
        for block_id, container_id, first_ns, last_ns, data in rows:
            name, labels = containers.get(str(container_id), ("", {}))
            found.append(
                CommittedBlock(
                    id=int(block_id),
                    container_id=str(container_id),
                    container_name=name,
                    labels=dict(labels),
                    first_ns=int(first_ns),
                    last_ns=int(last_ns),
                    records=_lines(bytes(data), path, int(block_id)),
                )
            )
        return found


@contextlib.contextmanager
def _snapshot(store: Path | LogStore, doing: str) -> Iterator[tuple[sqlite3.Connection, Path]]:
    """A read-only connection inside one read transaction (one WAL snapshot), version-checked."""
    path = store.path if isinstance(store, LogStore) else Path(store)
    if not path.exists():
        raise StoreError(f"no log store at {path}: is the agent's data directory mounted here?")
    with translating(path, doing):
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        with translating(path, doing):
            db.execute("BEGIN")
            version = read_schema_version(db, path)
            if version != SCHEMA_VERSION:
                raise StoreVersionError(
                    f"the log store {path} has schema version {version}; this nodekeeper reads "
                    f"version {SCHEMA_VERSION}: use the agent's own nodekeeper to query it"
                    + (
                        ", or start the agent once to upgrade it."
                        if version < SCHEMA_VERSION
                        else "."
                    )
                )
            yield db, path
    finally:
        db.close()


def _page(db: sqlite3.Connection, path: Path, query: LogQuery) -> QueryPage:
    names, chosen = _containers(db, query)
    if chosen is not None and not chosen:
        return QueryPage([], None, query.cursor)
    after_block, after_line = decode_cursor(query.cursor) if query.cursor else (0, -1)
    found: list[StoredLine] = []
    resume = query.cursor
    for block_id, container_id, data in _blocks(db, query, chosen, after_block):
        lines = _lines(data, path, block_id)
        start = after_line + 1 if block_id == after_block else 0
        name = names.get(container_id, "")
        for index, record in _matching(lines, start, query):
            if len(found) == query.limit:  # one more matched: there is a next page
                cursor = found[-1].cursor
                return QueryPage(found, cursor, cursor)
            found.append(_stored_line(record, container_id, name, encode_cursor(block_id, index)))
        resume = encode_cursor(block_id, max(len(lines) - 1, start - 1))
    return QueryPage(found, None, resume)


def _containers(db: sqlite3.Connection, query: LogQuery) -> tuple[dict[str, str], set[str] | None]:
    """Every container's name by id, and the ids the query chose (None: it names no container)."""
    names = {str(row[0]): str(row[1]) for row in db.execute("SELECT id, name FROM containers")}
    where: list[str] = []
    args: list[Any] = []
    if query.container:
        where.append("(substr(id, 1, length(?)) = ? OR name = ? OR name = '/' || ?)")
        args += [query.container] * 4
    for column in ("workload", "namespace", "pod"):
        value = getattr(query, column)
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if not where:
        return names, None
    rows = db.execute(f"SELECT id FROM containers WHERE {' AND '.join(where)}", args)
    return names, {str(row[0]) for row in rows}


def _blocks(
    db: sqlite3.Connection, query: LogQuery, chosen: set[str] | None, after_block: int
) -> Iterator[tuple[int, str, bytes]]:
    where = ["id >= ?"]
    args: list[Any] = [after_block]
    if chosen is not None:
        where.append("container_id IN (SELECT value FROM json_each(?))")
        args.append(orjson.dumps(sorted(chosen)).decode())
    if query.since_ns is not None:
        where.append("last_ns >= ?")
        args.append(query.since_ns)
    if query.until_ns is not None:
        where.append("first_ns < ?")
        args.append(query.until_ns)
    rows = db.execute(
        f"SELECT id, container_id, data FROM blocks WHERE {' AND '.join(where)} ORDER BY id", args
    )
    while batch := rows.fetchmany(BLOCKS_PER_FETCH):
        for block_id, container_id, data in batch:
            yield int(block_id), str(container_id), bytes(data)


_decompressor = zstandard.ZstdDecompressor()


def _lines(data: bytes, path: Path, block_id: int) -> list[bytes]:
    try:
        raw = _decompressor.decompress(data)
    except zstandard.ZstdError as e:
        raise StoreCorruptError(
            f"block {block_id} of the log store {path} does not decompress ({e}): the file is "
            "damaged; move it aside."
        ) from e
    return raw.split(b"\n")[:-1]  # each record ends with a newline


def _matching(
    lines: list[bytes], start: int, query: LogQuery
) -> Iterator[tuple[int, dict[str, Any]]]:
    needle = query.contains or ""
    verbatim = needle.encode() if needle and set(needle) <= _VERBATIM else None
    for index in range(start, len(lines)):
        line = lines[index]
        if verbatim is not None and verbatim not in line:
            continue
        record = _record(line)
        if query.stream and record["stream"] != query.stream:
            continue
        if needle and needle not in record["log"]:
            continue
        if query.since_ns is not None or query.until_ns is not None:
            ns = _time_ns(record["time"])
            if query.since_ns is not None and (ns is None or ns < query.since_ns):
                continue
            if query.until_ns is not None and (ns is None or ns >= query.until_ns):
                continue
        yield index, record


def _record(line: bytes) -> dict[str, Any]:
    """The record's fields with their types checked; a damaged record is shown, not dropped."""
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError:
        raw = None
    if not isinstance(raw, dict):
        text = line.decode("utf-8", "backslashreplace") + "\n"
        return {"log": text, "stream": "unknown", "time": "", "nk": int(Flag.MALFORMED)}
    return {
        "log": str(raw.get("log", "")),
        "stream": str(raw.get("stream", "")),
        "time": str(raw.get("time", "")),
        "nk": raw.get("nk", 0) if isinstance(raw.get("nk", 0), int) else 0,
    }


def _time_ns(value: str) -> int | None:
    return parse_ns(value)


def _stored_line(record: dict[str, Any], container_id: str, name: str, cursor: str) -> StoredLine:
    return StoredLine(
        container_id=container_id,
        container_name=name.removeprefix("/"),
        stream=record["stream"],
        time=record["time"],
        log=record["log"],
        flags=Flag(record["nk"] & (Flag.MERGED | Flag.TRUNCATED | Flag.MALFORMED)),
        cursor=cursor,
    )
