"""Queries of the log store: filters, pages, cursors, follow, and reading beside a live writer."""

import contextlib
import dataclasses
import sqlite3
from pathlib import Path

import pytest

from nodekeeper.api.times import NANOS
from nodekeeper.logs.query import MAX_LIMIT, LogQuery, QueryPage, run_query
from nodekeeper.logs.records import Flag
from nodekeeper.logs.store import LogStore, StoreError

from .storebuilders import T0, batch, container, numbered, record

SECOND = NANOS


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "logs.db"


@pytest.fixture
def shop(path: Path) -> Path:
    """Three containers: a Workload's, a pod's, and a plain one, their batches interleaved."""
    web = container("aaa111", "/web", namespace="shop", pod="web-0", workload="web")
    db = container("bbb222", "/db", namespace="shop", pod="db-0")
    tool = container("aab333", "/tool")
    with LogStore(path) as store:
        store.write(
            [
                batch("aaa111", numbered("aaa111", 0, 3, at_ns=T0), 3),
                batch("bbb222", numbered("bbb222", 0, 2, at_ns=T0 + 10 * SECOND), 2),
            ],
            [web, db, tool],
        )
        store.write(
            [
                batch(
                    "aab333",
                    [
                        record("tool starting\n", at_ns=T0 + 20 * SECOND, stream="stderr"),
                        record('said "<hi> & bye"\n', at_ns=T0 + 21 * SECOND),
                        record("merged line\n", at_ns=T0 + 22 * SECOND, nk=Flag.MERGED),
                        record("ünïcode ✓\n", at_ns=T0 + 23 * SECOND),
                    ],
                    4,
                ),
                batch("aaa111", numbered("aaa111", 3, 2, at_ns=T0 + 30 * SECOND), 5),
            ],
            [web, db, tool],
        )
    return path


def texts(page: QueryPage) -> list[str]:
    return [line.log.rstrip("\n") for line in page.lines]


def test_lines_come_in_storage_order_with_their_container(shop: Path) -> None:
    page = run_query(shop, LogQuery())
    assert texts(page) == [
        "aaa111 0",
        "aaa111 1",
        "aaa111 2",
        "bbb222 0",
        "bbb222 1",
        "tool starting",
        'said "<hi> & bye"',
        "merged line",
        "ünïcode ✓",
        "aaa111 3",
        "aaa111 4",
    ]
    first = page.lines[0]
    assert (first.container_id, first.container_name, first.stream) == ("aaa111", "web", "stdout")
    assert first.time == "2026-09-21T14:13:20Z"
    assert page.next_cursor is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (LogQuery(container="aa"), ["aaa111 0", "aaa111 1", "aaa111 2", "tool starting"]),
        (LogQuery(container="aaa"), ["aaa111 0", "aaa111 1", "aaa111 2", "aaa111 3"]),
        (LogQuery(container="db"), ["bbb222 0", "bbb222 1"]),
        (LogQuery(container="/db"), ["bbb222 0", "bbb222 1"]),
        (LogQuery(workload="web"), ["aaa111 0", "aaa111 1", "aaa111 2", "aaa111 3"]),
        (LogQuery(namespace="shop"), ["aaa111 0", "aaa111 1", "aaa111 2", "bbb222 0"]),
        (LogQuery(pod="db-0"), ["bbb222 0", "bbb222 1"]),
        (LogQuery(namespace="shop", pod="db-0"), ["bbb222 0", "bbb222 1"]),
        (LogQuery(stream="stderr"), ["tool starting"]),
        (LogQuery(contains="aaa111 4"), ["aaa111 4"]),
        (LogQuery(contains='"<hi> &'), ['said "<hi> & bye"']),  # escaped in the JSON
        (LogQuery(contains="ï"), ["ünïcode ✓"]),
        (LogQuery(contains="stdout"), []),  # a field of the record, not its text
        (
            LogQuery(since_ns=T0 + 21 * SECOND),
            ['said "<hi> & bye"', "merged line", "ünïcode ✓", "aaa111 3"],
        ),
        (LogQuery(until_ns=T0 + 3_000_000), ["aaa111 0", "aaa111 1", "aaa111 2"]),
        (
            LogQuery(since_ns=T0 + 10 * SECOND, until_ns=T0 + 22 * SECOND),
            ["bbb222 0", "bbb222 1", "tool starting", 'said "<hi> & bye"'],
        ),
        (LogQuery(container="nothing"), []),
        (LogQuery(workload="web", container="bbb"), []),
    ],
)
def test_each_filter_narrows_the_lines(shop: Path, query: LogQuery, expected: list[str]) -> None:
    query = dataclasses.replace(query, limit=4)
    assert texts(run_query(shop, query)) == expected


def test_flags_come_from_the_record(shop: Path) -> None:
    lines = run_query(shop, LogQuery(container="/tool")).lines
    assert [line.flags for line in lines] == [Flag(0), Flag(0), Flag.MERGED, Flag(0)]


def test_a_record_that_is_not_json_is_shown_as_malformed(path: Path) -> None:
    damaged = [b'{"log":"ok\\n","stream":"stdout","time":"x"}', b"\xffjunk"]
    with LogStore(path) as store:
        store.write([dataclasses.replace(batch("c1", [], 1), records=damaged)], [])
    lines = run_query(path, LogQuery()).lines
    assert [(line.log, line.flags) for line in lines] == [
        ("ok\n", Flag(0)),
        ("\\xffjunk\n", Flag.MALFORMED),
    ]
    assert lines[1].stream == "unknown"


def test_ten_pages_return_every_line_exactly_once(path: Path) -> None:
    with LogStore(path) as store:
        for n in range(25):  # blocks of 40 lines of two containers: pages end mid-block
            cid = f"c{n % 2}"
            store.write([batch(cid, numbered(cid, n * 40, 40), n)], [])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = run_query(path, LogQuery(limit=100, cursor=cursor))
        pages += 1
        seen += texts(page)
        if page.next_cursor is None:
            break
        assert page.next_cursor == page.lines[-1].cursor
        cursor = page.next_cursor
    assert pages == 10
    assert len(seen) == 1000
    assert sorted(int(text.split()[1]) for text in seen) == list(range(1000))
    assert seen == texts(run_query(path, LogQuery(limit=1000)))  # the same order


def test_the_last_page_has_no_next_cursor_even_when_full(path: Path) -> None:
    with LogStore(path) as store:
        store.write([batch("c1", numbered("c1", 0, 10), 10)], [])
    page = run_query(path, LogQuery(limit=10))
    assert len(page.lines) == 10
    assert page.next_cursor is None


def test_a_filter_pages_across_blocks(path: Path) -> None:
    with LogStore(path) as store:
        for n in range(10):
            store.write([batch("c1", numbered("c1", n * 10, 10), n)], [])
    first = run_query(path, LogQuery(contains="5", limit=10))
    assert texts(first) == [f"c1 {n}" for n in (5, 15, 25, 35, 45, 50, 51, 52, 53, 54)]
    second = run_query(path, LogQuery(contains="5", limit=10, cursor=first.next_cursor))
    assert texts(second) == [f"c1 {n}" for n in (55, 56, 57, 58, 59, 65, 75, 85, 95)]
    assert second.next_cursor is None


def test_following_with_the_last_cursor_returns_only_newer_lines(path: Path) -> None:
    with LogStore(path) as store:
        store.write(
            [batch("c1", numbered("c1", 0, 3), 3), batch("c2", numbered("c2", 0, 3), 3)], []
        )
        query = LogQuery(container="c1")
        page = run_query(path, query)
        assert texts(page) == ["c1 0", "c1 1", "c1 2"]
        assert page.next_cursor is None

        follow = dataclasses.replace(query, cursor=page.lines[-1].cursor)
        assert run_query(path, follow).lines == []
        store.write(
            [batch("c2", numbered("c2", 3, 2), 5), batch("c1", numbered("c1", 3, 2), 5)], []
        )
        assert texts(run_query(path, follow)) == ["c1 3", "c1 4"]


def test_the_resume_cursor_skips_lines_already_looked_at(path: Path) -> None:
    with LogStore(path) as store:
        store.write([batch("c1", numbered("c1", 0, 50), 50)], [])
        query = LogQuery(contains="wanted")
        page = run_query(path, query)
        assert page.lines == []
        assert page.resume_cursor is not None
        store.write([batch("c1", [record("wanted\n"), record("c1 late\n")], 52)], [])
        later = run_query(path, dataclasses.replace(query, cursor=page.resume_cursor))
        assert texts(later) == ["wanted"]
        assert later.resume_cursor is not None
        store.write([batch("c1", [record("wanted again\n")], 53)], [])
        again = run_query(path, dataclasses.replace(query, cursor=later.resume_cursor))
        assert texts(again) == ["wanted again"]


def test_a_cursor_outlives_the_retention_of_its_block(path: Path) -> None:
    with LogStore(path) as store:
        store.write([batch("c1", numbered("c1", 0, 2, at_ns=T0 - 7200 * SECOND), 2)], [])
        store.write([batch("c1", numbered("c1", 2, 2), 4)], [])
        cursor = run_query(path, LogQuery(limit=1)).next_cursor
        store.enforce_retention(3600, 10**9, now_ns=T0)
        assert texts(run_query(path, LogQuery(cursor=cursor))) == ["c1 2", "c1 3"]


def test_a_query_reads_beside_a_writer_that_holds_the_lock(shop: Path) -> None:
    with LogStore(shop) as store, contextlib.closing(sqlite3.connect(shop)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM blocks")  # uncommitted: invisible to readers
        assert len(run_query(shop, LogQuery()).lines) == 11
        assert len(run_query(store, LogQuery()).lines) == 11  # the agent's own store, too
        writer.execute("ROLLBACK")
        store.write([batch("bbb222", numbered("bbb222", 2, 1), 3)], [])
        assert texts(run_query(shop, LogQuery(container="bbb")))[-1] == "bbb222 2"


def test_a_query_never_writes(shop: Path) -> None:
    with contextlib.closing(sqlite3.connect(f"{shop.as_uri()}?mode=ro", uri=True)):
        pass
    before = shop.read_bytes()
    run_query(shop, LogQuery())
    assert shop.read_bytes() == before


def test_a_missing_store_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no log store"):
        run_query(tmp_path / "nothing.db", LogQuery())


@pytest.mark.parametrize("limit", [0, MAX_LIMIT + 1])
def test_a_limit_out_of_range_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        LogQuery(limit=limit)


@pytest.mark.parametrize("cursor", ["", "x", "1.2.3", "-1.0", "zz.1"])
def test_a_cursor_not_made_by_a_query_is_refused(cursor: str) -> None:
    with pytest.raises(ValueError, match="not a log cursor"):
        LogQuery(cursor=cursor)
