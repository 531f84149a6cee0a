"""The log store on real SQLite files: what survives failures, crashes, full disks and retention."""

import contextlib
import dataclasses
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodekeeper.api.times import NANOS
from nodekeeper.logs import store as store_module
from nodekeeper.logs.query import LogQuery, run_query
from nodekeeper.logs.records import Checkpoint, FilePosition, Flag
from nodekeeper.logs.store import (
    SCHEMA_VERSION,
    LogStore,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreVersionError,
)

from .storebuilders import T0, batch, container, noise, numbered, record


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "logs.db"


def raw(path: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    """Look at the file as anyone else would, through a connection of our own."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(sql, args).fetchall()


def all_lines(path: Path) -> list[str]:
    lines: list[str] = []
    cursor = None
    while True:
        page = run_query(path, LogQuery(limit=10000, cursor=cursor))
        lines += [line.log for line in page.lines]
        if page.next_cursor is None:
            return lines
        cursor = page.next_cursor


# ---------------------------------------------------------------- opening and versions


def test_opening_creates_the_directory_and_a_wal_store_at_the_current_version(path: Path) -> None:
    with LogStore(path):
        pass
    assert raw(path, "PRAGMA journal_mode") == [("wal",)]
    assert raw(path, "PRAGMA auto_vacuum") == [(2,)]  # incremental
    assert raw(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]


def test_reopening_keeps_what_was_stored(path: Path) -> None:
    with LogStore(path) as store:
        store.write([batch("c1", numbered("c1", 0, 3), 100)], [container("c1", "/web")])
    with LogStore(path) as store:
        assert store.checkpoints()["c1"].position.offset == 100
    assert all_lines(path) == ["c1 0\n", "c1 1\n", "c1 2\n"]


def test_a_store_from_a_newer_version_is_refused(path: Path) -> None:
    with LogStore(path):
        pass
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreVersionError, match="newer"):
        LogStore(path)
    with pytest.raises(StoreVersionError):
        run_query(path, LogQuery())


def test_an_older_store_is_upgraded_in_place(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LogStore(path) as store:  # a version 1 store, holding data
        store.write([batch("c1", numbered("c1", 0, 2), 10)], [container("c1", "/web")])
    v2 = ("ALTER TABLE containers ADD COLUMN note TEXT NOT NULL DEFAULT ''",)
    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, v2])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with LogStore(path) as store:
        assert store.checkpoints()["c1"].position.offset == 10
    assert raw(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION + 1),)
    ]
    assert raw(path, "SELECT id, note FROM containers") == [("c1", "")]


def test_an_sqlite_file_of_something_else_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE mine (x)")
    with pytest.raises(StoreVersionError, match="not a nodekeeper log store"):
        LogStore(path)


def test_a_damaged_file_is_reported_as_corrupt(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is no database at all" * 1000)
    with pytest.raises(StoreCorruptError, match="move it aside"):
        LogStore(path)


# ---------------------------------------------------------------- writing


def test_batches_become_blocks_and_the_last_checkpoint_per_container_wins(path: Path) -> None:
    with LogStore(path) as store:
        result = store.write(
            [
                batch("c1", numbered("c1", 0, 3), 100),
                batch("c2", numbered("c2", 0, 2), 50),
                batch("c1", numbered("c1", 3, 2), 170),
            ],
            [container("c1", "/web"), container("c2", "/db")],
        )
        assert (result.blocks, result.lines) == (3, 7)
        assert [(result.stored_bytes,)] == raw(path, "SELECT sum(length(data)) FROM blocks")
        assert {k: v.position.offset for k, v in store.checkpoints().items()} == {
            "c1": 170,
            "c2": 50,
        }
    assert all_lines(path) == ["c1 0\n", "c1 1\n", "c1 2\n", "c2 0\n", "c2 1\n", "c1 3\n", "c1 4\n"]


def test_a_batch_without_records_still_moves_its_checkpoint(path: Path) -> None:
    with LogStore(path) as store:
        store.write([batch("c1", numbered("c1", 0, 1), 10)], [])
        result = store.write([batch("c1", [], 99)], [])  # e.g. a rotation with nothing new
        assert result.blocks == 0
        assert store.checkpoints()["c1"].position.offset == 99
    assert raw(path, "SELECT count(*) FROM blocks") == [(1,)]


def test_checkpoints_come_back_whole(path: Path) -> None:
    rotated = FilePosition("/a.log.1", 2049, 7, b"\x00fp\xff", 4096, final_size=4096)
    newer = FilePosition("/a.log", 2049, 8, b"", 12)
    pending = {"stdout": b"half a line \xe2\x82", "stderr": b""}
    written = Checkpoint("c1", rotated, pending, (newer,))
    with LogStore(path) as store:
        store.write([dataclasses.replace(batch("c1", [], 0), checkpoint=written)], [])
    with LogStore(path) as store:
        assert store.checkpoints() == {"c1": written}


def test_container_metadata_is_kept_and_updated(path: Path) -> None:
    with LogStore(path, clock=lambda: 5) as store:
        store.write([], [container("c1", "/web", namespace="shop", pod="web-0", workload="web")])
        store.write([batch("c9", numbered("c9", 0, 1), 1)], [])  # never described
        store.write([], [container("c1", "/web-renamed", namespace="shop")])
    rows = raw(path, "SELECT id, name, namespace, pod, workload, first_seen_ns FROM containers")
    assert sorted(rows) == [("c1", "/web-renamed", "shop", "", "", 5), ("c9", "", "", "", "", 5)]


def test_a_failure_inside_the_transaction_keeps_neither_blocks_nor_checkpoints(path: Path) -> None:
    with LogStore(path) as store:
        store.write([batch("c1", numbered("c1", 0, 2), 20)], [container("c1", "/web")])
        # The block insert succeeds, then the checkpoint upsert fails: a real SQLite error.
        for event in ("INSERT", "UPDATE"):
            raw(
                path,
                f"CREATE TRIGGER refuse_{event} BEFORE {event} ON checkpoints"
                " BEGIN SELECT RAISE(ABORT, 'no'); END",
            )
        with pytest.raises(StoreError, match="no") as caught:
            store.write([batch("c1", numbered("c1", 2, 2), 40)], [container("c1", "/web-renamed")])
        assert not isinstance(caught.value, sqlite3.Error)
        assert isinstance(caught.value.__cause__, sqlite3.Error)
        assert store.checkpoints()["c1"].position.offset == 20
        assert all_lines(path) == ["c1 0\n", "c1 1\n"]
        assert raw(path, "SELECT name FROM containers") == [("/web",)]
        raw(path, "DROP TRIGGER refuse_INSERT")
        raw(path, "DROP TRIGGER refuse_UPDATE")
        store.write([batch("c1", numbered("c1", 2, 2), 40)], [container("c1", "/web-renamed")])
        assert store.checkpoints()["c1"].position.offset == 40
    assert all_lines(path) == ["c1 0\n", "c1 1\n", "c1 2\n", "c1 3\n"]
    assert raw(path, "SELECT name FROM containers") == [("/web-renamed",)]


CRASHING_WRITER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from nodekeeper.logs import store as store_module
    from tests.unit.logs.storebuilders import batch, numbered

    with store_module.LogStore(Path(sys.argv[1]), sync=sys.argv[2]) as store:
        store.write([batch("c1", numbered("c1", 0, 2), 20)], [])
        def die(db, rows):  # the blocks are inserted, the checkpoint not yet: the process dies
            os._exit(17)
        store_module._upsert_checkpoints = die
        store.write([batch("c1", numbered("c1", 2, 2), 40)], [])
    """
)


@pytest.mark.parametrize("sync", ["normal", "full"])
def test_a_process_dying_mid_transaction_leaves_the_last_commit(path: Path, sync: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(path), sync],
        cwd=Path(__file__).parents[3],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 17, done.stderr.decode()
    with LogStore(path) as store:
        assert store.checkpoints()["c1"].position.offset == 20
    assert all_lines(path) == ["c1 0\n", "c1 1\n"]
    assert raw(path, "PRAGMA integrity_check") == [("ok",)]


# ---------------------------------------------------------------- forgetting and retention


def test_forgetting_drops_the_checkpoint_but_keeps_the_lines(path: Path) -> None:
    with LogStore(path) as store:
        store.write([batch("c1", numbered("c1", 0, 2), 20), batch("c2", [], 5)], [])
        store.forget("c1", removed_ns=T0)
        assert set(store.checkpoints()) == {"c2"}
        assert store.enforce_retention(3600, 10**9, now_ns=T0).blocks_deleted == 0
    assert all_lines(path) == ["c1 0\n", "c1 1\n"]
    assert raw(path, "SELECT removed_ns FROM containers WHERE id = 'c1'") == [(T0,)]


def test_retention_by_age_keeps_the_newest_and_every_checkpoint(path: Path) -> None:
    hour = 3600 * NANOS
    with LogStore(path) as store:
        for age_hours in (5, 4, 3, 2, 1):
            records = numbered("c1", 10 * age_hours, 3, at_ns=T0 - age_hours * hour)
            store.write([batch("c1", records, age_hours)], [])
        store.write([batch("c2", numbered("c2", 0, 1, at_ns=T0 - 9 * hour), 1)], [])
        store.forget("c2", removed_ns=T0 - 8 * hour)
        result = store.enforce_retention(max_age_seconds=2.5 * 3600, max_bytes=10**9, now_ns=T0)
        assert result.blocks_deleted == 4  # 5 h, 4 h, 3 h of c1; c2's
        assert result.bytes_deleted > 0
        assert set(store.checkpoints()) == {"c1"}
    assert [line.split()[1] for line in all_lines(path)] == ["20", "21", "22", "10", "11", "12"]
    assert raw(path, "SELECT id FROM containers") == [("c1",)]  # c2: removed, nothing left


def test_retention_by_size_deletes_the_oldest_until_the_store_fits(path: Path) -> None:
    with LogStore(path) as store:
        for n in range(60):
            # Written out of time order: the oldest are deleted first, not the first written.
            at = T0 + (n if n % 2 else -n) * NANOS
            store.write([batch(f"c{n % 3}", noise(f"c{n % 3}", n * 100, 100, at_ns=at), n)], [])
        store.write([], [container("c0", "/web")])
        full = store.used_bytes()
        result = store.enforce_retention(max_age_seconds=10**6, max_bytes=full // 3, now_ns=T0)
        assert store.used_bytes() <= full // 3
        assert 30 < result.blocks_deleted < 60
        assert path.stat().st_size <= full // 3  # freed pages went back to the filesystem
        assert set(store.checkpoints()) == {"c0", "c1", "c2"}
        kept = raw(path, "SELECT min(first_ns) FROM blocks")[0][0]
        gone = sorted(T0 + (n if n % 2 else -n) * NANOS for n in range(60))[: result.blocks_deleted]
        assert isinstance(kept, int)
        assert max(gone) <= kept
    assert raw(path, "PRAGMA integrity_check") == [("ok",)]


def test_lines_without_a_docker_time_are_kept_as_of_when_they_were_stored(path: Path) -> None:
    # A malformed line (or a cut last line) has no Docker time: its batch says 0. Retention
    # must not take that for 1970, nor a time filter skip it.
    malformed = record("garbage\n", stream="unknown", nk=int(Flag.MALFORMED))
    timeless = dataclasses.replace(batch("c1", [malformed], 7), first_ns=0, last_ns=0)
    with LogStore(path, clock=lambda: T0) as store:
        store.write([timeless], [])
        assert store.enforce_retention(3600, 10**9, now_ns=T0 + NANOS).blocks_deleted == 0
    assert raw(path, "SELECT first_ns, last_ns FROM blocks") == [(T0, T0)]
    since = run_query(path, LogQuery(since_ns=T0 - NANOS))
    assert [line.log for line in since.lines] == ["garbage\n"]


def test_retention_with_nothing_to_delete_changes_nothing(path: Path) -> None:
    with LogStore(path) as store:
        store.write([batch("c1", numbered("c1", 0, 5), 5)], [])
        assert store.enforce_retention(3600, 10**9, now_ns=T0).blocks_deleted == 0
    assert len(all_lines(path)) == 5


# ---------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB filesystem (tmpfs), mounted for the test."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def test_a_full_disk_keeps_nothing_of_the_failed_write_and_a_retry_stores_it_once(
    small_disk: Path,
) -> None:
    path = small_disk / "logs.db"
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * 256 * 1024)
    written = 0
    with LogStore(path) as store:
        with pytest.raises(StoreFullError, match="no space left"):  # noqa: PT012
            for _ in range(1000):
                store.write([batch("c1", noise("c1", written, 100), written + 100)], [])
                written += 100
        assert store.checkpoints()["c1"].position.offset == written
        assert len(all_lines(path)) == written

        ballast.unlink()  # space is freed: the same batch goes in, then more
        store.write([batch("c1", noise("c1", written, 100), written + 100)], [])
        store.write([batch("c1", noise("c1", written + 100, 10), written + 110)], [])
        assert store.checkpoints()["c1"].position.offset == written + 110

    assert raw(path, "PRAGMA integrity_check") == [("ok",)]
    numbers = Counter(int(line.split()[1]) for line in all_lines(path))
    assert numbers == Counter(range(written + 110))  # every line, exactly once


# ---------------------------------------------------------------- no sqlite3 error leaks


def test_no_sqlite_error_leaks(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_SECONDS", 0.05)
    store = LogStore(path)
    with contextlib.closing(sqlite3.connect(path)) as other:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        with pytest.raises(StoreError, match="locked") as caught:
            store.write([batch("c1", numbered("c1", 0, 1), 1)], [])
        assert caught.type is StoreError
        other.execute("ROLLBACK")
    store.close()
    for call in (
        lambda: store.write([batch("c1", [], 1)], []),
        store.checkpoints,
        lambda: store.forget("c1", 0),
        lambda: store.enforce_retention(1, 1, 0),
        store.used_bytes,
    ):
        with pytest.raises(StoreError):
            call()


def test_a_store_path_that_cannot_be_a_directory_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError):
        LogStore(tmp_path / "file" / "logs.db")


def test_sync_must_be_normal_or_full(path: Path) -> None:
    with pytest.raises(ValueError, match="sync"):
        LogStore(path, sync="sometimes")  # type: ignore[arg-type]
    assert not os.path.exists(path)
