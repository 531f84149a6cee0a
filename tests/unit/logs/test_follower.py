"""Every line exactly once and in order, whatever dockerd does to the files, across restarts."""

import dataclasses
import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from nodekeeper.logs.files import LogFile
from nodekeeper.logs.follower import Follower
from nodekeeper.logs.parsing import JsonFileParser
from nodekeeper.logs.records import Checkpoint, Flag
from tests.unit.logs.fakedockerd import FakeDockerd

pytestmark = pytest.mark.timeout(30)

MAX_LINE = 64 * 1024
NOW = 1_800_000_000_000_000_000


def follower(
    dockerd: FakeDockerd,
    checkpoint: Checkpoint | None = None,
    **options: int | bool,
) -> Follower:
    parser = JsonFileParser(MAX_LINE, checkpoint.pending if checkpoint else None)
    return Follower(
        dockerd.info,
        parser,
        checkpoint,
        max_line_bytes=MAX_LINE,
        **options,  # type: ignore[arg-type]
    )


def read_all(reader: Follower, max_bytes: int = 1 << 20) -> list[dict[str, object]]:
    """Read until nothing is new, committing each batch as the pipeline does once it is stored."""
    entries: list[dict[str, object]] = []
    for _ in range(10_000):
        batch = reader.read(max_bytes, NOW)
        if batch is None:
            return entries
        assert batch.read_bytes <= max(max_bytes, 4 * MAX_LINE + 64 * 1024)
        entries.extend(orjson.loads(record) for record in batch.records)
        reader.committed(batch.checkpoint)
    raise AssertionError("the follower never ran out of lines")


def texts(entries: list[dict[str, object]]) -> list[str]:
    return [str(entry["log"]).removesuffix("\n") for entry in entries]


def flags(entry: dict[str, object]) -> Flag:
    value = entry.get("nk", 0)
    assert isinstance(value, int)
    return Flag(value)


def last_checkpoint(reader: Follower, max_bytes: int = 1 << 20) -> tuple[list[str], Checkpoint]:
    seen: list[str] = []
    checkpoint: Checkpoint | None = None
    while (batch := reader.read(max_bytes, NOW)) is not None:
        seen.extend(texts([orjson.loads(record) for record in batch.records]))
        reader.committed(batch.checkpoint)
        checkpoint = batch.checkpoint
    assert checkpoint is not None
    return seen, checkpoint


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def dockerd(tmp_path: Path) -> FakeDockerd:
    return FakeDockerd(tmp_path, max_size=4096, max_files=3)


@pytest.fixture
def no_fd_leak() -> Iterator[None]:
    before = open_fds()
    yield
    assert open_fds() == before


class TestFollowing:
    def test_lines_arrive_once_in_order_as_they_are_written(self, dockerd: FakeDockerd) -> None:
        with follower(dockerd) as reader:
            seen: list[str] = []
            for _ in range(5):
                dockerd.lines(7)
                seen += texts(read_all(reader))
            assert seen == dockerd.written
            assert reader.drained()
            assert reader.lag_bytes() == 0

    def test_many_rotations_between_reads(self, dockerd: FakeDockerd) -> None:
        before = open_fds()
        with follower(dockerd) as reader:
            for _ in range(20):
                dockerd.lines(60)  # more than one rotation's worth
                reader.refresh()  # inotify: the directory changed
            assert len(dockerd.files()) == 3  # dockerd deleted most files meanwhile
            assert open_fds() - before == reader.open_files  # one fd per file of the chain
            assert reader.lag_bytes() == sum(
                len(dockerd.record(f"{text}\n")) for text in dockerd.written
            )
            assert texts(read_all(reader)) == dockerd.written
            assert reader.counters.rotations >= 20
            assert reader.counters.lost_bytes == reader.counters.lost_files == 0
            assert reader.open_files == 1

    def test_two_rotations_between_refreshes(self, tmp_path: Path) -> None:
        dockerd = FakeDockerd(tmp_path, max_files=5)
        with follower(dockerd) as reader:
            dockerd.lines(10)
            seen = texts(read_all(reader))
            dockerd.lines(10)
            dockerd.rotate()
            dockerd.lines(10)
            dockerd.rotate()
            dockerd.lines(10)
            reader.refresh()
            assert reader.open_files == 3
            assert seen + texts(read_all(reader)) == dockerd.written
            assert reader.counters.rotations == 2

    def test_a_rotated_file_deleted_unread_is_still_read(self, tmp_path: Path) -> None:
        dockerd = FakeDockerd(tmp_path, max_files=2)
        with follower(dockerd) as reader:
            dockerd.lines(10)
            dockerd.rotate()
            reader.refresh()
            dockerd.lines(10)
            reader.refresh()
            dockerd.rotate()  # deletes the first file: only our fd keeps it
            reader.refresh()
            dockerd.lines(10)
            assert texts(read_all(reader)) == dockerd.written
            assert reader.counters.lost_files == reader.counters.lost_bytes == 0

    def test_reading_without_refresh_still_follows_a_rotation(self, tmp_path: Path) -> None:
        dockerd = FakeDockerd(tmp_path, max_files=3)
        with follower(dockerd) as reader:
            dockerd.lines(5)
            dockerd.rotate()
            dockerd.lines(5)
            assert texts(read_all(reader)) == dockerd.written

    def test_compressed_rotations_while_running(self, tmp_path: Path) -> None:
        dockerd = FakeDockerd(tmp_path, max_size=2048, max_files=4, compress=True)
        with follower(dockerd) as reader:
            for _ in range(6):
                dockerd.lines(40)
                reader.refresh()
            assert texts(read_all(reader)) == dockerd.written

    def test_compressed_double_rotation_between_refreshes(self, tmp_path: Path) -> None:
        dockerd = FakeDockerd(tmp_path, max_files=4, compress=True)
        with follower(dockerd) as reader:
            dockerd.lines(10)
            dockerd.rotate()
            dockerd.lines(10)
            dockerd.rotate()  # the middle file now exists only as .1.gz
            dockerd.lines(10)
            reader.refresh()
            assert texts(read_all(reader)) == dockerd.written

    def test_reads_are_bounded(self, dockerd: FakeDockerd) -> None:
        dockerd.lines(140)
        with follower(dockerd, chunk_bytes=1000) as reader:
            batch = reader.read(3000, NOW)
            assert batch is not None
            assert 0 < batch.read_bytes <= 3000
            assert texts(read_all(reader, max_bytes=700)) == dockerd.written[batch.lines :]

    def test_starting_at_the_end_skips_what_was_there(self, dockerd: FakeDockerd) -> None:
        dockerd.lines(100)
        old = len(dockerd.written)
        dockerd.write_raw(dockerd.record("half a line")[:20])
        with follower(dockerd, read_from_head=False) as reader:
            assert reader.read(1 << 20, NOW) is None
            dockerd.write_raw(dockerd.record("rest")[20:])
            dockerd.lines(3)
            entries = read_all(reader)
            assert texts(entries)[-3:] == dockerd.written[old:]
            assert len(entries) == 4  # the line that was being written when reading started

    def test_the_head_starts_at_the_oldest_rotated_file(self, dockerd: FakeDockerd) -> None:
        dockerd.lines(170)
        assert len(dockerd.files()) == 3
        with follower(dockerd) as reader:
            entries = texts(read_all(reader))
        assert entries == dockerd.written[-len(entries) :]
        assert len(entries) < len(dockerd.written)  # dockerd deleted the oldest before we came


class TestPartialLines:
    def test_an_unfinished_line_waits_for_its_newline(self, dockerd: FakeDockerd) -> None:
        with follower(dockerd) as reader:
            record = dockerd.record("slow\n")
            dockerd.write_raw(record[:10])
            assert reader.read(1 << 20, NOW) is None
            assert not reader.drained()
            dockerd.write_raw(record[10:])
            assert texts(read_all(reader)) == ["slow"]
            assert reader.drained()

    def test_a_16k_split_line_spanning_a_rotation_is_merged(self, tmp_path: Path) -> None:
        dockerd = FakeDockerd(tmp_path, max_files=3)
        big = "x" * 40_000
        with follower(dockerd) as reader:
            dockerd.lines(3)
            dockerd.write_raw(dockerd.record(big[:16384]))
            dockerd.write_raw(dockerd.record(big[16384:32768]))
            assert texts(read_all(reader)) == dockerd.written
            dockerd.rotate()
            reader.refresh()
            dockerd.write_raw(dockerd.record(big[32768:] + "\n"))
            dockerd.lines(2)
            entries = read_all(reader)
        assert texts(entries) == [big, *dockerd.written[3:]]
        assert entries[0]["nk"] == Flag.MERGED

    def test_a_partial_line_survives_a_restart(self, tmp_path: Path) -> None:
        dockerd = FakeDockerd(tmp_path, max_files=3)
        big = "y" * 20_000
        dockerd.lines(2)
        dockerd.write_raw(dockerd.record(big[:16384]))
        with follower(dockerd) as reader:
            seen, checkpoint = last_checkpoint(reader)
        assert checkpoint.pending
        dockerd.write_raw(dockerd.record(big[16384:] + "\n"))
        with follower(dockerd, checkpoint) as reader:
            seen += texts(read_all(reader))
        assert seen == [*dockerd.written, big]

    def test_an_endless_line_is_handed_over_in_bounded_pieces(self, tmp_path: Path) -> None:
        dockerd = FakeDockerd(tmp_path)
        bound = 4 * MAX_LINE + 64 * 1024
        dockerd.write_raw(b"z" * (bound * 2 + 10))
        with follower(dockerd, chunk_bytes=4096) as reader:
            entries = read_all(reader)
            assert len(entries) == 2  # two pieces of the bound; the rest waits for a newline
            assert all(Flag.MALFORMED in flags(entry) for entry in entries)
            dockerd.write_raw(b"\n")
            dockerd.lines(1)
            entries = read_all(reader)
        assert len(entries) == 2
        assert texts(entries)[-1] == dockerd.written[-1]


class TestTruncation:
    def test_copytruncate_restarts_at_zero(self, dockerd: FakeDockerd) -> None:
        with follower(dockerd) as reader:
            dockerd.lines(10)
            seen = texts(read_all(reader))
            dockerd.copytruncate()
            dockerd.lines(3)
            seen += texts(read_all(reader))
            assert seen == dockerd.written
            assert reader.counters.truncations == 1
            assert reader.counters.lost_bytes == 0

    def test_a_file_truncated_and_rewritten_past_the_offset_is_noticed(
        self, dockerd: FakeDockerd
    ) -> None:
        with follower(dockerd) as reader:
            dockerd.lines(3)
            seen = texts(read_all(reader))
            dockerd.copytruncate()
            dockerd.lines(10)  # longer than before: the size alone cannot tell
            seen += texts(read_all(reader))
            assert seen == dockerd.written
            assert reader.counters.truncations == 1

    def test_unread_bytes_cut_away_are_counted(self, dockerd: FakeDockerd) -> None:
        with follower(dockerd) as reader:
            dockerd.lines(5)
            read_all(reader)
            dockerd.lines(5)
            reader.lag_bytes()  # the agent saw them before logrotate cut them
            copied = dockerd.copytruncate()
            dockerd.lines(1)
            entries = texts(read_all(reader))
            assert entries == dockerd.written[-1:]
            unread = sum(len(dockerd.record("line-000000\n")) for _ in range(5))
            assert reader.counters.lost_bytes == unread
            assert len(copied) > unread

    def test_dockerd_with_max_file_1_truncates_in_place(self, tmp_path: Path) -> None:
        dockerd = FakeDockerd(tmp_path, max_size=1000, max_files=1)
        with follower(dockerd) as reader:
            seen: list[str] = []
            for _ in range(40):
                dockerd.lines(1)  # dockerd loses what nobody read before it truncates
                seen += texts(read_all(reader))
            assert seen == dockerd.written
            assert reader.counters.truncations > 0


class TestRestart:
    @pytest.mark.parametrize("compress", [False, True])
    @pytest.mark.parametrize("rotations", [0, 1, 2, 3])
    def test_resumes_where_the_checkpoint_says(
        self, tmp_path: Path, rotations: int, compress: bool
    ) -> None:
        dockerd = FakeDockerd(tmp_path, max_files=5, compress=compress)
        dockerd.lines(20)
        with follower(dockerd) as reader:
            seen, checkpoint = last_checkpoint(reader)
        dockerd.lines(5)  # written while the agent was down
        for _ in range(rotations):
            dockerd.rotate()  # the checkpointed file becomes .1, .2 ... (or .1.gz ...)
            dockerd.lines(5)
        with follower(dockerd, checkpoint) as reader:
            seen += texts(read_all(reader))
            assert reader.counters.lost_files == reader.counters.lost_bytes == 0
        assert seen == dockerd.written

    def test_a_file_met_twice_while_dockerd_compresses_it_is_read_once(
        self, tmp_path: Path
    ) -> None:
        dockerd = FakeDockerd(tmp_path, max_files=4, compress=True)
        dockerd.lines(10)
        with follower(dockerd) as reader:
            seen, checkpoint = last_checkpoint(reader)
        dockerd.lines(10)
        dockerd.rotate(compress_now=False)
        rotated = Path(f"{dockerd.path}.1")
        Path(f"{rotated}.gz").write_bytes(gzip.compress(rotated.read_bytes()))  # .1 not gone yet
        dockerd.lines(10)
        with follower(dockerd, checkpoint) as reader:
            seen += texts(read_all(reader))
        assert seen == dockerd.written

    def test_a_rotation_while_the_files_are_opened_skips_nothing(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        dockerd = FakeDockerd(tmp_path, max_files=4)
        for _ in range(2):
            dockerd.lines(10)
            dockerd.rotate()
        dockerd.lines(10)
        real_open = LogFile.open
        rotated = False

        def open_then_rotate(path: str | os.PathLike[str]) -> LogFile | None:
            nonlocal rotated
            file = real_open(path)
            if not rotated and str(path).endswith(".1"):
                rotated = True  # dockerd rotates between two opens of the walk
                dockerd.rotate()
                dockerd.lines(10)
            return file

        monkeypatch.setattr(LogFile, "open", staticmethod(open_then_rotate))
        with follower(dockerd) as reader:
            assert rotated
            assert texts(read_all(reader)) == dockerd.written

    def test_resumes_through_the_newer_files_it_had_seen(self, tmp_path: Path) -> None:
        dockerd = FakeDockerd(tmp_path, max_files=5, compress=True)
        dockerd.lines(30)
        with follower(dockerd) as reader:
            for _ in range(2):
                dockerd.rotate()
                reader.refresh()
                dockerd.lines(30)
            batch = reader.read(500, NOW)
            assert batch is not None
            reader.committed(batch.checkpoint)
            seen, checkpoint = texts([orjson.loads(r) for r in batch.records]), batch.checkpoint
        assert checkpoint.position.final_size is not None
        assert len(checkpoint.newer) == 2
        dockerd.rotate()
        dockerd.lines(4)
        with follower(dockerd, checkpoint) as reader:
            seen += texts(read_all(reader))
        assert seen == dockerd.written

    def test_a_checkpointed_file_deleted_meanwhile_counts_exact_lost_bytes(
        self, tmp_path: Path
    ) -> None:
        dockerd = FakeDockerd(tmp_path, max_files=2)
        dockerd.lines(30)
        with follower(dockerd) as reader:
            dockerd.rotate()
            reader.refresh()  # the agent sees the rotation: the file's final size is known
            dockerd.lines(10)
            batch = reader.read(300, NOW)
            assert batch is not None
            reader.committed(batch.checkpoint)
            checkpoint = batch.checkpoint
        position = checkpoint.position
        assert position.final_size is not None
        unread = position.final_size - position.offset
        dockerd.rotate()  # deletes the checkpointed file
        dockerd.lines(10)
        with follower(dockerd, checkpoint) as reader:
            entries = texts(read_all(reader))
            assert reader.counters.lost_bytes == unread > 0
            assert reader.counters.lost_files == 0
        assert entries == dockerd.written[30:]  # the newer files, in full

    def test_a_live_file_deleted_meanwhile_counts_a_lost_file(self, tmp_path: Path) -> None:
        dockerd = FakeDockerd(tmp_path, max_files=2)
        dockerd.lines(10)
        with follower(dockerd) as reader:
            _, checkpoint = last_checkpoint(reader)
        assert checkpoint.position.final_size is None
        dockerd.lines(5)
        dockerd.rotate()
        dockerd.lines(5)
        dockerd.rotate()  # deletes it
        dockerd.lines(5)
        with follower(dockerd, checkpoint) as reader:
            entries = texts(read_all(reader))
            assert reader.counters.lost_files == 1
            assert reader.counters.lost_bytes == 0
        assert entries == dockerd.written[-10:]

    def test_a_reused_inode_is_a_new_file(self, tmp_path: Path) -> None:
        dockerd = FakeDockerd(tmp_path)
        dockerd.lines(20)
        with follower(dockerd) as reader:
            _, checkpoint = last_checkpoint(reader)
        dockerd.path.unlink()  # e.g. the container was recreated with the same id
        dockerd.path.touch()
        reborn = dockerd.path.stat()
        if (reborn.st_dev, reborn.st_ino) != (
            checkpoint.position.device,
            checkpoint.position.inode,
        ):
            # The filesystem handed out another inode (tmpfs does): make the reuse explicit.
            position = dataclasses.replace(
                checkpoint.position, device=reborn.st_dev, inode=reborn.st_ino
            )
            checkpoint = dataclasses.replace(checkpoint, position=position)
        dockerd.lines(3, prefix="reborn")
        with follower(dockerd, checkpoint) as reader:
            entries = texts(read_all(reader))
            assert reader.counters.lost_files == 1
        assert entries == dockerd.written[-3:]

    def test_a_checkpoint_from_another_container_layout_reads_everything_left(
        self, tmp_path: Path
    ) -> None:
        dockerd = FakeDockerd(tmp_path, max_files=3)
        dockerd.lines(5)
        with follower(dockerd) as reader:
            _, checkpoint = last_checkpoint(reader)
        dockerd.copytruncate()  # cut while the agent was down
        dockerd.lines(2)
        with follower(dockerd, checkpoint) as reader:
            assert texts(read_all(reader)) == dockerd.written[-2:]
            assert reader.counters.lost_files == 1


class TestRemoval:
    def test_a_removed_container_is_drained_then_closed(
        self, tmp_path: Path, no_fd_leak: None
    ) -> None:
        dockerd = FakeDockerd(tmp_path, max_size=2048, max_files=3)
        reader = follower(dockerd)
        for _ in range(10):
            dockerd.lines(10)
            reader.refresh()
        last = dockerd.record("cut short by removal\n")
        dockerd.write_raw(last[:25])
        reader.refresh()
        dockerd.remove_container()  # our fds are all that is left of the files
        entries = read_all(reader, max_bytes=1000)
        assert texts(entries[:-1]) == dockerd.written[-len(entries) + 1 :]
        assert entries[-1]["nk"] == Flag.MALFORMED
        assert str(entries[-1]["log"]) == last[:25].decode() + "\n"
        assert reader.drained()
        assert reader.lag_bytes() == 0
        reader.close()
        reader.close()

    def test_pending_partials_are_stored_when_the_container_is_gone(self, tmp_path: Path) -> None:
        dockerd = FakeDockerd(tmp_path)
        with follower(dockerd) as reader:
            dockerd.lines(1)
            dockerd.write_raw(dockerd.record("p" * 16384))
            assert texts(read_all(reader)) == dockerd.written
            assert not reader.drained()
            dockerd.remove_container()
            entries = read_all(reader)
            assert texts(entries) == ["p" * 16384]
            assert entries[0]["nk"] == Flag.MERGED
            assert reader.drained()

    def test_a_sealed_container_flushes_its_unfinished_line(self, dockerd: FakeDockerd) -> None:
        with follower(dockerd) as reader:
            dockerd.lines(2)
            dockerd.write_raw(dockerd.record("never ends")[:15])
            assert texts(read_all(reader)) == dockerd.written
            assert not reader.drained()
            reader.seal()
            entries = read_all(reader)
            assert len(entries) == 1
            assert entries[0]["nk"] == Flag.MALFORMED
            assert reader.drained()

    def test_drained_waits_for_the_commit(self, dockerd: FakeDockerd) -> None:
        with follower(dockerd) as reader:
            dockerd.lines(10)
            first = reader.read(200, NOW)
            second = reader.read(1 << 20, NOW)
            assert first is not None
            assert second is not None
            assert reader.read(1 << 20, NOW) is None
            assert not reader.drained()
            assert reader.lag_bytes() == first.read_bytes + second.read_bytes
            reader.committed(first.checkpoint)
            assert reader.lag_bytes() == second.read_bytes
            reader.committed(second.checkpoint)
            assert reader.lag_bytes() == 0
            assert reader.drained()

    def test_a_container_without_its_log_yet_is_picked_up(self, tmp_path: Path) -> None:
        dockerd = FakeDockerd(tmp_path)
        dockerd.path.unlink()
        with follower(dockerd) as reader:
            assert reader.open_files == 0
            assert reader.read(1 << 20, NOW) is None
            dockerd.path.touch()
            dockerd.lines(2)
            assert texts(read_all(reader)) == dockerd.written
