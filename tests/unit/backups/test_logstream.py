"""Docker's timestamped log output split into entries and merged by time."""

from nodekeeper.runtime.logstream import PARTIAL_BYTES, entries, merge

T1 = "2026-01-01T00:00:00.000000001Z"
T2 = "2026-01-01T00:00:00.000000002Z"
T3 = "2026-01-01T00:00:01.000000000Z"


def test_entries_keep_the_bytes_and_drop_the_timestamps() -> None:
    raw = f"{T1} one\n{T3} two \xe2\n{T3} last-no-newline".encode()
    found = list(entries(raw, "stdout"))
    assert [e.timestamp for e in found] == [T1, T3, T3]
    assert b"".join(e.data for e in found) == "one\ntwo \xe2\nlast-no-newline".encode()


def test_partial_entries_of_a_long_line_are_joined_again() -> None:
    line = b"x" * (PARTIAL_BYTES + 10) + b"\n"
    raw = f"{T1} ".encode() + line[:PARTIAL_BYTES] + f"{T2} ".encode() + line[PARTIAL_BYTES:]
    found = list(entries(raw, "stdout"))
    assert len(found) == 2
    assert b"".join(e.data for e in found) == line


def test_streams_merge_in_time_order() -> None:
    out = list(entries(f"{T1} a\n{T3} c\n".encode(), "stdout"))
    err = list(entries(f"{T2} b\n".encode(), "stderr"))
    assert b"".join(e.data for e in merge(out, err)) == b"a\nb\nc\n"
