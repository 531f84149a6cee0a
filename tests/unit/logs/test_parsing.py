"""Docker json-file lines become stored records: kept as written, merged, truncated or flagged."""

import random
from typing import Any

import orjson
import pytest

from nodekeeper.api.times import docker_time_ns, rfc3339_ns
from nodekeeper.logs.parsing import JsonFileParser, Parsed
from nodekeeper.logs.records import Flag

LIMIT = 64 * 1024
PARTIAL = 16 * 1024  # dockerd's copier buffer: longer lines become partial records
NOW_NS = 1_800_000_000_123_456_789
NOW = rfc3339_ns(NOW_NS)


def at(second: int, fraction: str = "5") -> str:
    """A time as Docker writes it: RFC 3339, trailing zeros of the fraction trimmed."""
    return f"2026-03-01T10:00:{second:02d}.{fraction}Z"


def docker_line(log: str, stream: str = "stdout", time: str | None = None) -> bytes:
    """One json-file line without its newline, as dockerd encodes it (Go escapes <, > and &)."""
    encoded = orjson.dumps({"log": log, "stream": stream, "time": time or at(0)})
    return encoded.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")


def docker_partials(text: str, stream: str, first_second: int) -> list[bytes]:
    """A long line split the way dockerd splits it: 16384-byte chunks, the newline on the last."""
    raw = text.encode()
    chunks = [raw[i : i + PARTIAL] for i in range(0, len(raw), PARTIAL)]
    lines = []
    for n, chunk in enumerate(chunks):
        # Go's encoder writes the bytes of a character cut between chunks as U+FFFD.
        log = chunk.decode("utf-8", "replace") + ("\n" if n == len(chunks) - 1 else "")
        lines.append(docker_line(log, stream, at(first_second + n)))
    return lines


def as_docker_writes(text: str) -> str:
    """The text a reader of Docker's partials gets back: cut characters become U+FFFD."""
    raw = text.encode()
    chunks = [raw[i : i + PARTIAL] for i in range(0, len(raw), PARTIAL)]
    return "".join(chunk.decode("utf-8", "replace") for chunk in chunks) + "\n"


def parse(parser: JsonFileParser, *lines: bytes) -> Parsed:
    return parser.parse(b"".join(line + b"\n" for line in lines), NOW_NS)


def stored(parsed: Parsed) -> list[dict[str, Any]]:
    return [orjson.loads(record) for record in parsed.records]


class TestPlainLines:
    def test_are_stored_byte_for_byte(self) -> None:
        lines = [
            docker_line("GET /healthz 200\n", "stdout", at(1, "123456789")),
            docker_line("<b>warn</b> & \u00e9t\u00e9 \U0001f600\n", "stderr", at(1, "1234")),
            b'{"log":"with attrs\\n","stream":"stdout","attrs":{"tag":"x"},"time":"'
            + at(2).encode()
            + b'"}',
        ]
        parser = JsonFileParser(LIMIT)

        parsed = parse(parser, *lines)

        assert parsed.records == lines
        assert parser.counters.lines == 3
        assert parser.counters.malformed == 0

    def test_first_and_last_docker_times_are_reported(self) -> None:
        parsed = parse(
            JsonFileParser(LIMIT),
            docker_line("a\n", time=at(1, "1")),
            docker_line("b\n", time=at(2)),
            docker_line("c\n", time=at(3, "00000001")),
        )
        assert parsed.first_ns == docker_time_ns(at(1, "1"))
        assert parsed.last_ns == docker_time_ns(at(3, "00000001"))

    def test_one_line_is_both_first_and_last(self) -> None:
        parsed = parse(JsonFileParser(LIMIT), docker_line("a\n", time=at(7)))
        assert parsed.first_ns == parsed.last_ns == docker_time_ns(at(7))

    def test_nothing_to_parse_gives_no_records_and_no_times(self) -> None:
        parser = JsonFileParser(LIMIT)
        assert parser.parse(b"", NOW_NS) == Parsed([], 0, 0)
        assert parser.counters.lines == 0

    def test_other_streams_are_kept_as_they_are(self) -> None:
        line = docker_line("from a plugin\n", stream="custom")
        assert parse(JsonFileParser(LIMIT), line).records == [line]


class TestPartialLines:
    def test_a_40_kib_line_is_merged_with_the_time_of_its_first_partial(self) -> None:
        text = "".join(f"{n:05d} " for n in range(40 * 1024 // 6))
        out = docker_partials(text, "stdout", first_second=10)
        assert [len(orjson.loads(line)["log"]) for line in out] == [
            16384,
            16384,
            len(text) - 32768 + 1,
        ]
        parser = JsonFileParser(LIMIT)

        parsed = parse(parser, *out)

        assert stored(parsed) == [
            {"log": text + "\n", "stream": "stdout", "time": at(10), "nk": Flag.MERGED}
        ]
        assert parser.counters.partial_merges == 1
        assert parser.counters.lines == 1
        assert parsed.first_ns == parsed.last_ns == docker_time_ns(at(10))

    def test_the_other_stream_interleaves_and_is_kept_in_place(self) -> None:
        long_out = "o" * (40 * 1024)
        long_err = "e" * (20 * 1024)
        out = docker_partials(long_out, "stdout", first_second=10)
        err = docker_partials(long_err, "stderr", first_second=20)
        plain_err = docker_line("plain error\n", "stderr", at(30))
        plain_out = docker_line("plain output\n", "stdout", at(31))
        parser = JsonFileParser(LIMIT)

        parsed = parse(parser, out[0], err[0], out[1], err[1], plain_err, out[2], plain_out)

        assert stored(parsed) == [
            {"log": long_err + "\n", "stream": "stderr", "time": at(20), "nk": Flag.MERGED},
            {"log": "plain error\n", "stream": "stderr", "time": at(30)},
            {"log": long_out + "\n", "stream": "stdout", "time": at(10), "nk": Flag.MERGED},
            {"log": "plain output\n", "stream": "stdout", "time": at(31)},
        ]
        # A stream with no partial pending keeps its lines as written while the other merges.
        assert parsed.records[1] == plain_err
        assert parsed.records[3] == plain_out
        assert parser.counters.partial_merges == 2
        assert (parsed.first_ns, parsed.last_ns) == (docker_time_ns(at(20)), docker_time_ns(at(31)))

    def test_partials_may_span_calls(self) -> None:
        text = "x" * (40 * 1024)
        out = docker_partials(text, "stdout", first_second=0)
        parser = JsonFileParser(LIMIT)

        assert parse(parser, out[0]).records == []
        assert parse(parser, out[1]).records == []
        assert stored(parse(parser, out[2]))[0]["log"] == text + "\n"

    def test_a_line_cut_into_partials_mid_character_keeps_what_docker_wrote(self) -> None:
        text = "a" * (PARTIAL - 1) + "\u00e9" * 10  # the first \u00e9 straddles the chunk edge
        parsed = parse(JsonFileParser(LIMIT), *docker_partials(text, "stdout", 0))
        assert (
            stored(parsed)[0]["log"] == "a" * (PARTIAL - 1) + "\ufffd\ufffd" + "\u00e9" * 9 + "\n"
        )

    def test_a_line_still_pending_is_stored_by_flush(self) -> None:
        out = docker_partials("y" * (20 * 1024), "stdout", first_second=3)
        parser = JsonFileParser(LIMIT)
        parse(parser, out[0])

        flushed = parser.flush(NOW_NS)

        assert stored(flushed) == [
            {"log": "y" * PARTIAL, "stream": "stdout", "time": at(3), "nk": Flag.MERGED}
        ]
        assert parser.pending == {}


class TestPendingAcrossRestarts:
    def test_a_new_parser_from_pending_finishes_the_line(self) -> None:
        text = "".join(chr(0x61 + n % 26) for n in range(40 * 1024))
        out = docker_partials(text, "stdout", first_second=5)
        err = docker_partials("e" * (17 * 1024), "stderr", first_second=8)
        before = JsonFileParser(LIMIT)
        assert parse(before, out[0], err[0], out[1]).records == []

        after = JsonFileParser(LIMIT, pending=before.pending)
        parsed = parse(after, err[1], out[2])

        assert stored(parsed) == [
            {"log": "e" * (17 * 1024) + "\n", "stream": "stderr", "time": at(8), "nk": Flag.MERGED},
            {"log": text + "\n", "stream": "stdout", "time": at(5), "nk": Flag.MERGED},
        ]
        assert after.pending == {}

    def test_pending_is_a_copy(self) -> None:
        parser = JsonFileParser(LIMIT)
        parse(parser, *docker_partials("z" * (20 * 1024), "stdout", 0)[:1])
        parser.pending.clear()
        assert set(parser.pending) == {"stdout"}

    def test_nothing_pending_between_whole_lines(self) -> None:
        parser = JsonFileParser(LIMIT)
        parse(parser, docker_line("a\n"))
        assert parser.pending == {}

    def test_a_line_cut_before_the_restart_stays_cut(self) -> None:
        out = docker_partials("w" * (40 * 1024), "stdout", first_second=0)
        before = JsonFileParser(20_000)
        parse(before, out[0], out[1])

        after = JsonFileParser(20_000, pending=before.pending)
        [record] = stored(parse(after, out[2]))

        assert record["log"] == "w" * 19_999 + "\n"
        assert record["nk"] == Flag.MERGED | Flag.TRUNCATED
        assert after.counters.truncated == 1
        assert after.counters.truncated_bytes == 40 * 1024 - 19_999

    @pytest.mark.parametrize(
        "saved",
        [
            {"stdout": b"not json"},
            {"stdout": b'{"time": 1, "log": "x", "cut_bytes": 0}'},
            {"stdout": b'{"time": "yesterday", "log": "x", "cut_bytes": 0}'},
            {"invented": b'{"time": "2026-03-01T10:00:00Z", "log": "x", "cut_bytes": 0}'},
        ],
    )
    def test_an_unreadable_pending_line_is_dropped(self, saved: dict[str, bytes]) -> None:
        parser = JsonFileParser(LIMIT, pending=saved)
        assert parser.pending == {}
        assert stored(parse(parser, docker_line("next\n")))[0]["log"] == "next\n"


class TestTruncation:
    def test_a_line_at_the_limit_is_kept_whole(self) -> None:
        line = docker_line("x" * 99 + "\n")
        assert parse(JsonFileParser(100), line).records == [line]

    def test_a_line_over_the_limit_keeps_its_head_and_newline(self) -> None:
        parser = JsonFileParser(100)

        [record] = stored(parse(parser, docker_line("x" * 150 + "\n", "stderr", at(4))))

        assert record == {
            "log": "x" * 99 + "\n",
            "stream": "stderr",
            "time": at(4),
            "nk": Flag.TRUNCATED,
        }
        assert parser.counters.truncated == 1
        assert parser.counters.truncated_bytes == 51

    @pytest.mark.parametrize("char", ["\u00e9", "\u20ac", "\U0001f600"])
    def test_a_multibyte_character_is_never_split(self, char: str) -> None:
        size = len(char.encode())
        parser = JsonFileParser(100)

        [record] = stored(parse(parser, docker_line(char * 60 + "\n")))

        kept = record["log"]
        assert kept == char * (99 // size) + "\n"
        assert len(kept.encode()) <= 100
        assert parser.counters.truncated_bytes == 60 * size - 99 // size * size

    def test_characters_count_in_bytes_not_in_characters(self) -> None:
        # 40 characters, 120 bytes: over a 100-byte limit although the character count is not.
        [record] = stored(parse(JsonFileParser(100), docker_line("\u20ac" * 40 + "\n")))
        assert record["nk"] == Flag.TRUNCATED

    def test_escapes_do_not_count_against_the_limit(self) -> None:
        line = docker_line("\u0001" * 90 + "\n")  # 541 bytes encoded, 91 bytes of text
        assert parse(JsonFileParser(100), line).records == [line]

    def test_a_merged_line_is_cut_and_the_rest_of_its_partials_dropped(self) -> None:
        out = docker_partials("m" * (40 * 1024), "stdout", first_second=0)
        parser = JsonFileParser(20_000)

        for partial in out[:2]:
            parse(parser, partial)
            assert all(len(saved) < 20_100 for saved in parser.pending.values())
        [record] = stored(parse(parser, out[2]))

        assert record["log"] == "m" * 19_999 + "\n"
        assert record["nk"] == Flag.MERGED | Flag.TRUNCATED
        assert parser.counters.truncated == 1
        assert parser.counters.truncated_bytes == 40 * 1024 - 19_999
        assert parser.counters.partial_merges == 1

    def test_a_merged_line_ending_exactly_at_the_limit_is_whole(self) -> None:
        text = "k" * (PARTIAL * 2 - 1)
        [record] = stored(parse(JsonFileParser(PARTIAL * 2), *docker_partials(text, "stdout", 0)))
        assert record["log"] == text + "\n"
        assert record["nk"] == Flag.MERGED


T0 = at(0).encode()
MALFORMED_LINES = [
    pytest.param(b'{"log":"cut short', id="invalid-json"),
    pytest.param(b"\x00\x00\x00\x00" + docker_line("after a hole\n"), id="nul-bytes"),
    pytest.param(b'{"log":"caf\xe9\\n","stream":"stdout","time":"' + T0 + b'"}', id="invalid-utf8"),
    pytest.param(b'["log", "stream", "time"]', id="not-an-object"),
    pytest.param(b'"just a string"', id="a-string"),
    pytest.param(b'{"log":"x\\n","stream":"stdout"}', id="missing-time"),
    pytest.param(b'{"log":7,"stream":"stdout","time":"' + T0 + b'"}', id="log-not-a-string"),
    pytest.param(b'{"log":"x\\n","stream":null,"time":"' + T0 + b'"}', id="stream-null"),
    pytest.param(b'{"log":"x\\n","stream":"stdout","time":17}', id="time-a-number"),
    pytest.param(b'{"log":"x\\n","stream":"stdout","time":"last tuesday"}', id="time-unparseable"),
    pytest.param(b"", id="empty-line"),
]  # fmt: skip


class TestMalformedLines:
    @pytest.mark.parametrize("raw", MALFORMED_LINES)
    def test_are_kept_raw_flagged_and_counted(self, raw: bytes) -> None:
        parser = JsonFileParser(LIMIT)

        parsed = parse(parser, raw)

        assert stored(parsed) == [
            {
                "log": raw.decode("utf-8", "backslashreplace") + "\n",
                "stream": "unknown",
                "time": NOW,
                "nk": Flag.MALFORMED,
            }
        ]
        assert parser.counters.malformed == 1
        assert parser.counters.lines == 1
        assert parsed.first_ns == parsed.last_ns == 0

    def test_do_not_hide_the_good_lines_around_them(self) -> None:
        parser = JsonFileParser(LIMIT)
        good = [docker_line("one\n", time=at(1)), docker_line("two\n", time=at(2))]

        parsed = parse(parser, b"garbage", good[0], b"\xff\xfe", good[1], b"{}")

        assert [r.get("nk") for r in stored(parsed)] == [
            Flag.MALFORMED,
            None,
            Flag.MALFORMED,
            None,
            Flag.MALFORMED,
        ]
        assert parsed.records[1] == good[0]
        assert parsed.records[3] == good[1]
        assert (parsed.first_ns, parsed.last_ns) == (docker_time_ns(at(1)), docker_time_ns(at(2)))
        assert parser.counters.malformed == 3

    def test_a_bad_time_at_either_end_is_malformed_and_the_next_time_is_used(self) -> None:
        bad = b'{"log":"x\\n","stream":"stdout","time":"2026-13-45T99:00:00Z"}'
        good = [docker_line("one\n", time=at(1)), docker_line("two\n", time=at(2))]
        parser = JsonFileParser(LIMIT)

        parsed = parse(parser, bad, good[0], good[1], bad)

        assert [r.get("nk") for r in stored(parsed)] == [Flag.MALFORMED, None, None, Flag.MALFORMED]
        assert (parsed.first_ns, parsed.last_ns) == (docker_time_ns(at(1)), docker_time_ns(at(2)))
        assert parser.counters.malformed == 2

    def test_a_long_one_is_cut_at_the_limit(self) -> None:
        parser = JsonFileParser(100)

        [record] = stored(parse(parser, b"z" * 300))

        assert record["log"] == "z" * 99 + "\n"
        assert record["nk"] == Flag.MALFORMED | Flag.TRUNCATED
        assert parser.counters.truncated_bytes == 201

    def test_an_unterminated_tail_is_kept_raw(self) -> None:
        parser = JsonFileParser(LIMIT)
        tail = b'{"log":"the container died mid-wri'

        parsed = parser.parse_unterminated(tail, NOW_NS)

        assert stored(parsed) == [
            {"log": tail.decode() + "\n", "stream": "unknown", "time": NOW, "nk": Flag.MALFORMED}
        ]
        assert (parser.counters.lines, parser.counters.malformed) == (1, 1)
        assert parser.parse_unterminated(b"", NOW_NS).records == []

    def test_a_record_with_a_bad_time_does_not_start_a_merge(self) -> None:
        parser = JsonFileParser(LIMIT)
        first = b'{"log":"' + b"p" * 100 + b'","stream":"stdout","time":"soon"}'

        parsed = parse(parser, first, docker_line("q\n", time=at(9)))

        assert [r.get("nk") for r in stored(parsed)] == [Flag.MALFORMED, None]
        assert parser.pending == {}


class TestAnyInput:
    def test_random_garbage_never_raises_and_pending_stays_bounded(self) -> None:
        limit = 1000
        rng = random.Random(20260301)
        fragments = [
            b'{"log":"',
            b'","stream":"stdout","time":"2026-03-01T10:00:00.5Z"}',
            b'","stream":"stderr","time":"2026-03-01T10:00:01Z"}',
            b'","stream":"other","time":"x"}',
            b"\\n",
            b"\\u00e9",
            b"\\ud83d\\ude00",
            b"\xe2\x82\xac",
            b"\xff",
            b"\x00",
            b"{",
            b"}",
            b'"',
            b"\n",
            b"a" * 700,
        ]
        parser = JsonFileParser(limit)
        for _ in range(3000):
            data = b"".join(rng.choice(fragments) for _ in range(rng.randrange(1, 12)))
            if rng.random() < 0.1:
                parser = JsonFileParser(limit, pending=parser.pending)
            if rng.random() < 0.05:
                parsed = parser.parse_unterminated(data, NOW_NS)
            else:
                parsed = parser.parse(data + b"\n", NOW_NS)
            for record in parsed.records:
                value = orjson.loads(record)
                assert set(value) >= {"log", "stream", "time"}
            assert sum(len(saved) for saved in parser.pending.values()) <= 2 * (limit + 200)

    def test_random_partials_of_both_streams_merge_to_what_docker_wrote(self) -> None:
        rng = random.Random(7)
        written: dict[str, list[str]] = {"stdout": [], "stderr": []}
        queues: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        for n in range(40):
            stream = rng.choice(["stdout", "stderr"])
            size = rng.randrange(1, 40_000)
            text = "".join(rng.choice("ab\u00e9\u20ac\U0001f600") for _ in range(size))
            written[stream].append(as_docker_writes(text))
            queues[stream].extend(docker_partials(text, stream, n))
        interleaved: list[bytes] = []
        while queues["stdout"] or queues["stderr"]:
            stream = rng.choice([s for s in queues if queues[s]])
            interleaved.append(queues[stream].pop(0))
        parser = JsonFileParser(1024 * 1024)

        by_stream: dict[str, list[str]] = {"stdout": [], "stderr": []}
        for start in range(0, len(interleaved), 3):
            for record in stored(parse(parser, *interleaved[start : start + 3])):
                by_stream[record["stream"]].append(record["log"])

        assert by_stream == written
        assert parser.counters.malformed == 0
        assert parser.pending == {}
