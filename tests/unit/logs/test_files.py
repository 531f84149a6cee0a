"""Telling log files apart across renames, compression and inode reuse."""

import dataclasses
import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodekeeper.logs.files import (
    Gunzip,
    LogFile,
    fingerprint,
    identity,
    matches,
)
from nodekeeper.logs.records import FINGERPRINT_BYTES, FilePosition
from tests.unit.logs.fakedockerd import FakeDockerd

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def opened() -> Iterator[list[int]]:
    fds: list[int] = []
    yield fds
    for fd in fds:
        os.close(fd)


def open_fd(path: Path, fds: list[int]) -> int:
    fd = os.open(path, os.O_RDONLY)
    fds.append(fd)
    return fd


def position_of(path: Path, fds: list[int], offset: int = 0) -> FilePosition:
    fd = open_fd(path, fds)
    device, inode = identity(fd)
    return FilePosition(str(path), device, inode, fingerprint(fd), offset)


class TestIdentity:
    def test_an_fd_and_its_path_have_the_same_identity(
        self, tmp_path: Path, opened: list[int]
    ) -> None:
        path = tmp_path / "a.log"
        path.write_bytes(b"x\n")
        assert identity(open_fd(path, opened)) == identity(path) == identity(str(path))

    def test_the_fingerprint_is_the_first_bytes(self, tmp_path: Path, opened: list[int]) -> None:
        path = tmp_path / "a.log"
        path.write_bytes(bytes(range(256)) * 4)
        assert fingerprint(open_fd(path, opened)) == bytes(range(256))[:FINGERPRINT_BYTES]
        short = tmp_path / "b.log"
        short.write_bytes(b"young\n")
        assert fingerprint(open_fd(short, opened)) == b"young\n"


class TestMatching:
    def test_a_file_matches_its_position_after_a_rename_and_growth(
        self, tmp_path: Path, opened: list[int]
    ) -> None:
        dockerd = FakeDockerd(tmp_path, max_files=3)
        dockerd.lines(1)
        position = position_of(dockerd.path, opened, offset=10)
        assert len(position.fingerprint) < FINGERPRINT_BYTES  # taken while the file was young
        dockerd.lines(50)
        dockerd.rotate()
        assert matches(position, open_fd(Path(f"{dockerd.path}.1"), opened))
        assert not matches(position, open_fd(dockerd.path, opened))

    def test_a_reused_inode_with_other_first_bytes_is_another_file(
        self, tmp_path: Path, opened: list[int]
    ) -> None:
        dockerd = FakeDockerd(tmp_path)
        dockerd.lines(20)
        position = position_of(dockerd.path, opened)
        os.close(opened.pop())
        dockerd.path.unlink()
        dockerd.path.touch()
        dockerd.lines(20)
        reborn = open_fd(dockerd.path, opened)
        if identity(reborn) != (position.device, position.inode):
            # The filesystem handed out another inode: make the reuse explicit.
            position = dataclasses.replace(position, inode=identity(reborn)[1])
        assert identity(reborn) == (position.device, position.inode)
        assert not matches(position, reborn)

    def test_a_compressed_copy_matches_by_its_decompressed_first_bytes(
        self, tmp_path: Path, opened: list[int]
    ) -> None:
        dockerd = FakeDockerd(tmp_path, max_files=3, compress=True)
        dockerd.lines(40)
        position = position_of(dockerd.path, opened, offset=100)
        dockerd.rotate()
        packed = Path(f"{dockerd.path}.1.gz")
        assert matches(position, open_fd(packed, opened), compressed=True)
        file = LogFile.open(packed)
        assert file is not None
        try:
            assert file.compressed
            assert file.matches(position)
        finally:
            file.close()

    def test_an_empty_fingerprint_never_matches_a_compressed_file(
        self, tmp_path: Path, opened: list[int]
    ) -> None:
        packed = tmp_path / "a.log.1.gz"
        packed.write_bytes(gzip.compress(b"anything\n"))
        position = FilePosition(str(packed), 0, 0, b"", 0)
        assert not matches(position, open_fd(packed, opened), compressed=True)


class TestGunzip:
    def test_reads_at_increasing_offsets_and_rereads_the_last_piece(
        self, tmp_path: Path, opened: list[int]
    ) -> None:
        data = b"".join(b"%08d\n" % i for i in range(100_000))
        packed = tmp_path / "x.gz"
        packed.write_bytes(gzip.compress(data))
        reader = Gunzip(open_fd(packed, opened))
        assert reader.pread(FINGERPRINT_BYTES, 0) == data[:FINGERPRINT_BYTES]
        assert reader.pread(1000, 5000) == data[5000:6000]
        assert reader.pread(1000, 5500) == data[5500:6500]  # overlaps the last piece
        assert reader.pread(10, 0) == data[:10]  # before it: decompression restarts
        assert reader.pread(10**6, len(data) - 7) == data[-7:]
        assert reader.ended
        assert not reader.damaged
        assert reader.produced == len(data)
        assert reader.pread(5, len(data) + 10) == b""

    def test_a_cut_short_stream_reads_as_its_end_and_says_so(
        self, tmp_path: Path, opened: list[int]
    ) -> None:
        data = os.urandom(200_000)
        packed = tmp_path / "x.gz"
        packed.write_bytes(gzip.compress(data)[:50_000])
        reader = Gunzip(open_fd(packed, opened))
        head = reader.pread(len(data), 0)
        assert data.startswith(head)
        assert len(head) < len(data)
        assert reader.ended
        assert reader.damaged

    def test_the_size_of_a_compressed_file_is_its_decompressed_size(self, tmp_path: Path) -> None:
        data = b"a line\n" * 1000
        packed = tmp_path / "x.log.1.gz"
        packed.write_bytes(gzip.compress(data))
        file = LogFile.open(packed)
        assert file is not None
        try:
            assert file.size() == len(data)
            assert file.pread(len(data) + 1, 0) == data
            assert file.ended
            assert file.size() == len(data)
        finally:
            file.close()

    def test_opening_a_missing_file_gives_none(self, tmp_path: Path) -> None:
        assert LogFile.open(tmp_path / "gone.log") is None
