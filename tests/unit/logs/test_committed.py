"""The seam a log sink reads through: committed blocks after a cursor, in commit order."""

from pathlib import Path

import orjson
import pytest

from nodekeeper.logs.query import CommittedBlock, committed_blocks
from nodekeeper.logs.store import LogStore

from .storebuilders import T0, batch, container, numbered

HOUR = 3600 * 1_000_000_000


def texts(blocks: list[CommittedBlock], container_id: str | None = None) -> list[str]:
    return [
        orjson.loads(line)["log"].strip()
        for block in blocks
        if container_id is None or block.container_id == container_id
        for line in block.records
    ]


def test_a_sink_that_resumes_after_its_last_block_reads_every_line_once(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    web = container("aaa111", "/web", namespace="shop", workload="web")
    tool = container("bbb222", "/tool")
    with LogStore(path) as store:
        for n in range(5):  # five transactions, two containers interleaved
            store.write(
                [
                    batch("aaa111", numbered("aaa111", n * 2, 2), n * 2 + 2),
                    batch("bbb222", numbered("bbb222", n, 1), n + 1),
                ],
                [web, tool],
            )
        shipped: list[CommittedBlock] = []
        cursor = 0
        while page := committed_blocks(store, after_block=cursor, limit=3):
            assert [b.id for b in page] == sorted(b.id for b in page)
            assert all(b.id > cursor for b in page)
            shipped.extend(page)
            cursor = page[-1].id

    assert len(shipped) == 10
    assert texts(shipped, "aaa111") == [f"aaa111 {n}" for n in range(10)]
    assert texts(shipped, "bbb222") == [f"bbb222 {n}" for n in range(5)]
    first = next(b for b in shipped if b.container_id == "aaa111")
    assert (first.container_name, first.labels["io.kubernetes.pod.namespace"]) == ("/web", "shop")
    assert (first.first_ns, first.last_ns) == (T0, T0 + 1_000_000)


def test_blocks_retention_deleted_are_skipped_not_refetched(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    with LogStore(path) as store:
        web = container("aaa111", "/web")
        store.write([batch("aaa111", numbered("aaa111", 0, 2, at_ns=T0), 2)], [web])
        store.write([batch("aaa111", numbered("aaa111", 2, 2, at_ns=T0 + 5 * HOUR), 4)], [web])
        store.enforce_retention(max_age_seconds=3600, max_bytes=10**9, now_ns=T0 + 5 * HOUR)
        left = committed_blocks(path, after_block=0)
    assert texts(left) == ["aaa111 2", "aaa111 3"]
    assert left[0].id == 2  # the first block's id is gone for good, never reused


def test_a_cursor_at_the_end_reads_nothing_and_a_bad_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    with LogStore(path) as store:
        store.write([batch("aaa111", numbered("aaa111", 0, 1), 1)], [container("aaa111", "/w")])
    newest = committed_blocks(path, after_block=0)[-1].id
    assert committed_blocks(path, after_block=newest) == []
    with pytest.raises(ValueError, match="limit"):
        committed_blocks(path, after_block=0, limit=0)
