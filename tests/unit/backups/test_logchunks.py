"""The log as zstd-compressed chunks under the ConfigMap limit, and back."""

import os
import random

import pytest

from nodekeeper.backups import logchunks
from nodekeeper.backups.logchunks import Chunk


def test_a_small_log_is_one_chunk_and_comes_back_identical() -> None:
    prepared = logchunks.prepare(b"hello\nworld\n")
    assert prepared.info() == {"bytes": 12, "chunks": 1, "truncated": False}
    assert logchunks.reassemble(prepared.chunks) == b"hello\nworld\n"


def test_an_empty_log_has_no_chunks() -> None:
    prepared = logchunks.prepare(b"")
    assert prepared.info() == {"bytes": 0, "chunks": 0, "truncated": False}
    assert logchunks.reassemble(prepared.chunks) == b""


def test_a_5_mb_log_comes_back_byte_for_byte_in_chunks_under_the_limit() -> None:
    rng = random.Random(7)
    text = b"".join(f"{i:08d} {rng.random():.12f} restic line\n".encode() for i in range(150_000))
    log = (text + os.urandom(512 * 1024))[: 5 * 1024 * 1024]  # incompressible tail too
    prepared = logchunks.prepare(log)
    assert not prepared.truncated
    assert prepared.bytes == len(log)
    assert len(prepared.chunks) >= 2
    assert all(len(c.data) <= logchunks.MAX_COMPRESSED_BYTES for c in prepared.chunks)
    # base64 in binaryData must stay well under a ConfigMap's 1 MiB
    assert all(len(c.data) * 4 / 3 < 0.7 * 1024 * 1024 for c in prepared.chunks)
    shuffled = list(prepared.chunks)
    random.Random(1).shuffle(shuffled)
    assert logchunks.reassemble(shuffled) == log


def test_over_the_cap_head_and_tail_are_kept() -> None:
    log = b"HEAD" + b"m" * 10_000 + b"TAIL"
    kept, truncated = logchunks.truncate(log, 1000)
    assert truncated
    assert len(kept) <= 1000
    assert kept.startswith(b"HEAD")
    assert kept.endswith(b"TAIL")
    assert b"bytes cut from the middle" in kept
    prepared = logchunks.prepare(log, cap_bytes=1000)
    assert prepared.truncated
    assert prepared.bytes == len(kept)
    assert logchunks.reassemble(prepared.chunks) == kept


def test_at_the_cap_nothing_is_cut() -> None:
    assert logchunks.truncate(b"x" * 100, 100) == (b"x" * 100, False)


def test_a_missing_chunk_is_an_error_not_a_silent_gap() -> None:
    prepared = logchunks.prepare(os.urandom(1024 * 1024))
    with pytest.raises(ValueError, match="chunk 1 is missing"):
        logchunks.reassemble([c for c in prepared.chunks if c.index != 1])


def test_chunk_order_comes_from_the_index() -> None:
    a, b = logchunks.prepare(b"a").chunks[0], logchunks.prepare(b"b").chunks[0]
    assert logchunks.reassemble([Chunk(1, b.data), Chunk(0, a.data)]) == b"ab"
