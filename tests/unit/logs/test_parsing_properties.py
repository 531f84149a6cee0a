"""Properties of the json-file parser on random input: what README's "Bad input" promises.

Every complete input line comes out as exactly one stored record, in order (a line split into
partials as one merged record, where its last partial was), kept as written, merged, cut at
``max_line_bytes`` or kept raw as malformed, and each of those is counted. Whatever the bytes and
wherever the calls cut them, the parser raises nothing and holds at most one line per stream,
never longer than the limit.

The inputs are built from a grammar whose every line is known to be a record or known not to be
one (invalid JSON, NUL bytes, invalid UTF-8, wrong types, missing keys, not an object), so the
expected output is derived from what was written, not from the parser's own logic.
"""

import dataclasses
import itertools
from typing import Any

import orjson
from hypothesis import event, given, settings
from hypothesis import strategies as st

from nodekeeper.api.times import docker_time_ns, rfc3339_ns
from nodekeeper.logs.parsing import MIN_LINE_BYTES, JsonFileParser, ParseCounters, head_bytes
from nodekeeper.logs.records import Flag

NOW_NS = 1_800_000_000_123_456_789
BASE_NS = 1_790_000_000_000_000_000
STREAMS = ("stdout", "stderr")

# Text of any kind but the newline that ends a line (a container's output is split there):
# control characters, CR (CRLF output), NUL, quotes and backslashes, multibyte, no surrogates.
line_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n")
# Long lines cheaply: a random piece repeated, up to a few partials' worth.
texts = st.one_of(
    st.text(line_chars, max_size=40),
    st.builds(
        lambda piece, times: piece * times,
        st.text(line_chars, min_size=1, max_size=8),
        st.integers(1, 6000),
    ),
)


def docker_time(ns: int) -> str:
    """RFC 3339 as Docker writes it: nanoseconds, trailing zeros of the fraction trimmed."""
    whole, fraction = rfc3339_ns(ns)[:-1].split(".")
    fraction = fraction.rstrip("0")
    return f"{whole}.{fraction}Z" if fraction else f"{whole}Z"


def encode(log: str, stream: str, time: str, *, go_escapes: bool, attrs: bool) -> bytes:
    """One json-file line without its newline, as dockerd encodes it (Go escapes <, > and &)."""
    fields: dict[str, Any] = {"log": log, "stream": stream}
    if attrs:
        fields["attrs"] = {"tag": "x"}
    fields["time"] = time
    encoded = orjson.dumps(fields)
    if go_escapes:
        encoded = encoded.replace(b"<", b"\\u003c").replace(b">", b"\\u003e")
        encoded = encoded.replace(b"&", b"\\u0026")
    return encoded


# --- the grammar: what a json-file log may hold, each with what must be stored for it ---


@dataclasses.dataclass(frozen=True)
class Expected:
    """One stored record: its text, stream and flags; its Docker time (None: malformed)."""

    log: str
    stream: str
    flags: Flag
    time: str | None
    cut_bytes: int = 0


@dataclasses.dataclass(frozen=True)
class Whole:
    """A record Docker wrote in one piece (a stream other than stdout/stderr may lack the
    newline: only those two are merged)."""

    text: str
    stream: str
    newline: bool
    ns: int
    go_escapes: bool
    attrs: bool

    def lines(self) -> list[bytes]:
        log = self.text + ("\n" if self.newline else "")
        return [encode(log, self.stream, self.time, go_escapes=self.go_escapes, attrs=self.attrs)]

    @property
    def time(self) -> str:
        return docker_time(self.ns)


@dataclasses.dataclass(frozen=True)
class Split:
    """A line of stdout or stderr that Docker wrote as partials (cut anywhere between
    characters: dockerd's 16 KiB, or a flush), the newline on the last."""

    pieces: tuple[str, ...]  # at least two
    stream: str
    ns: int

    def lines(self) -> list[bytes]:
        out = []
        for index, piece in enumerate(self.pieces):
            last = index == len(self.pieces) - 1
            time = docker_time(self.ns + index)
            out.append(
                encode(
                    piece + ("\n" if last else ""), self.stream, time, go_escapes=True, attrs=False
                )
            )
        return out


@dataclasses.dataclass(frozen=True)
class Garbage:
    """A line that is no json-file record, by construction."""

    raw: bytes
    kind: str

    def lines(self) -> list[bytes]:
        return [self.raw]


def _wholes() -> st.SearchStrategy[Whole]:
    return st.builds(
        Whole,
        text=texts,
        stream=st.sampled_from(STREAMS),
        newline=st.just(True),
        ns=st.integers(BASE_NS, BASE_NS + 10**15),
        go_escapes=st.booleans(),
        attrs=st.booleans(),
    )


other_stream_wholes = st.builds(
    Whole,
    text=texts,
    stream=st.sampled_from(["custom", "", "stdin"]),
    newline=st.booleans(),
    ns=st.integers(BASE_NS, BASE_NS + 10**15),
    go_escapes=st.booleans(),
    attrs=st.just(False),
)


@st.composite
def splits(draw: st.DrawFn) -> Split:
    text = draw(texts)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), min_size=1, max_size=4))))
    bounds = [0, *cuts, len(text)]
    pieces = tuple(text[a:b] for a, b in itertools.pairwise(bounds))
    if len(pieces) < 2:
        pieces = (text, "")
    return Split(
        pieces, draw(st.sampled_from(STREAMS)), draw(st.integers(BASE_NS, BASE_NS + 10**15))
    )


@st.composite
def garbage(draw: st.DrawFn) -> Garbage:
    """Each kind is invalid whatever the draw: the expected output does not depend on luck."""
    record = draw(_wholes()).lines()[0]
    kind = draw(
        st.sampled_from(
            [
                "cut-short",
                "nul",
                "invalid-utf8",
                "not-an-object",
                "wrong-type",
                "missing-key",
                "empty",
            ]
        )
    )
    if kind == "cut-short":  # a proper prefix of an object lacks its closing brace
        raw = record[: draw(st.integers(1, len(record) - 1))]
    elif kind == "nul":  # NUL is neither JSON whitespace nor allowed raw inside a string
        at = draw(st.integers(0, len(record)))
        raw = record[:at] + b"\x00" * draw(st.integers(1, 4)) + record[at:]
    elif kind == "invalid-utf8":
        at = draw(st.integers(0, len(record)))
        bad = draw(
            st.sampled_from([b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88"])
        )
        raw = record[:at] + bad + record[at:]
    elif kind == "not-an-object":  # no JSON object starts with anything but "{" (after blanks)
        raw = draw(
            st.binary(max_size=200).filter(
                lambda b: b"\n" not in b and not b.lstrip(b" \t\r").startswith(b"{")
            )
        )
    elif kind == "wrong-type":
        field = draw(st.sampled_from(["log", "stream", "time"]))
        value = draw(
            st.one_of(
                st.integers(-(2**63), 2**64 - 1),
                st.none(),
                st.booleans(),
                st.lists(st.booleans(), max_size=2),
            )
        )
        fields = {"log": "x\n", "stream": "stdout", "time": docker_time(BASE_NS), field: value}
        raw = orjson.dumps(fields)
    elif kind == "missing-key":
        fields = {"log": "x\n", "stream": "stdout", "time": docker_time(BASE_NS)}
        del fields[draw(st.sampled_from(sorted(fields)))]
        raw = orjson.dumps(fields)
    else:
        raw = b""
    assert b"\n" not in raw
    return Garbage(raw, kind)


@st.composite
def logs(draw: st.DrawFn) -> list[Whole | Split | Garbage]:
    """A log: items of both streams, partials of one stream never interleaved with that
    stream's other records (Docker writes one stream's records in order), but interleaved with
    everything else."""
    items = draw(
        st.lists(st.one_of(_wholes(), other_stream_wholes, splits(), garbage()), max_size=12)
    )
    return items


def interleave(draw: st.DrawFn, items: list[Whole | Split | Garbage]) -> list[tuple[int, bytes]]:
    """The items' lines in an order Docker could write them: a split line's partials may have
    another stream's records or garbage between them, never a record of its own stream."""
    out: list[tuple[int, bytes]] = []
    open_split: dict[str, tuple[int, list[bytes]]] = {}
    for index, item in enumerate(items):
        stream = getattr(item, "stream", None)
        if stream in open_split:  # finish that stream's split line first
            owner, rest = open_split.pop(stream)
            out.extend((owner, line) for line in rest)
        lines = item.lines()
        if isinstance(item, Split) and draw(st.booleans()):
            held = draw(st.integers(1, len(lines) - 1))
            out.extend((index, line) for line in lines[:held])
            open_split[item.stream] = (index, lines[held:])
        else:
            out.extend((index, line) for line in lines)
    for owner, rest in open_split.values():
        out.extend((owner, line) for line in rest)
    return out


def expected(item: Whole | Split | Garbage, limit: int) -> Expected:
    """What the store must hold for one item under ``max_line_bytes=limit``."""
    if isinstance(item, Garbage):
        raw = item.raw
        keep = head_bytes(raw, limit - 1)
        flags = Flag.MALFORMED | (Flag.TRUNCATED if keep < len(raw) else 0)
        return Expected(
            raw[:keep].decode("utf-8", "backslashreplace") + "\n",
            "unknown",
            flags,
            None,
            len(raw) - keep,
        )
    if isinstance(item, Whole):
        body = item.text.encode()
        room = limit - 1 if item.newline else limit
        newline = "\n" if item.newline else ""
        time = item.time
        merged = Flag(0)
    else:
        body = "".join(item.pieces).encode()
        room = limit - 1
        newline = "\n"
        time = docker_time(item.ns)
        merged = Flag.MERGED
    keep = head_bytes(body, room)
    flags = merged | (Flag.TRUNCATED if keep < len(body) else 0)
    return Expected(body[:keep].decode() + newline, item.stream, flags, time, len(body) - keep)


def actual(record: bytes) -> Expected:
    value = orjson.loads(record)
    assert isinstance(value, dict)
    flags = Flag(value.get("nk", 0))
    assert isinstance(value["log"], str)
    assert isinstance(value["stream"], str)
    assert isinstance(value["time"], str)
    time = None if Flag.MALFORMED in flags else value["time"]
    return Expected(value["log"], value["stream"], flags, time)


def add(total: ParseCounters, more: ParseCounters) -> None:
    for field in dataclasses.fields(ParseCounters):
        setattr(total, field.name, getattr(total, field.name) + getattr(more, field.name))


limits = st.one_of(st.integers(MIN_LINE_BYTES, 300), st.integers(300, 70_000), st.just(256 * 1024))


def assert_bounded(parser: JsonFileParser) -> None:
    """Memory: at most one pending line per merged stream, each within the limit."""
    pending = parser.pending
    assert set(pending) <= set(STREAMS)
    for saved in pending.values():
        assert len(orjson.loads(saved)["log"].encode()) <= parser.max_line_bytes - 1


# --- the properties ---


@given(
    items=logs(),
    limit=limits,
    data=st.data(),
)
def test_every_line_is_stored_once_in_order_kept_merged_cut_or_flagged(
    items: list[Whole | Split | Garbage], limit: int, data: st.DataObject
) -> None:
    lines = interleave(data.draw, items)
    # Calls end at any line boundary; between two calls the agent may restart from `pending`.
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(lines)), max_size=6))))
    restarts = data.draw(st.lists(st.booleans(), min_size=len(cuts) + 1, max_size=len(cuts) + 1))
    parser = JsonFileParser(limit)
    counters = ParseCounters()
    got: list[Expected] = []
    for (start, end), restart in zip(
        zip([0, *cuts], [*cuts, len(lines)], strict=True), restarts, strict=True
    ):
        chunk = b"".join(line + b"\n" for _, line in lines[start:end])
        parsed = parser.parse(chunk, NOW_NS)
        assert parser.counters.lines >= len(parsed.records)
        records = [actual(record) for record in parsed.records]
        timed = [docker_time_ns(r.time) for r in records if r.time is not None]
        assert (parsed.first_ns, parsed.last_ns) == ((timed[0], timed[-1]) if timed else (0, 0))
        got += records
        assert_bounded(parser)
        if restart:
            add(counters, parser.counters)
            parser = JsonFileParser(limit, pending=parser.pending)
    assert parser.pending == {}  # every split line got its last partial
    add(counters, parser.counters)

    # Each item is stored where its last line was written.
    last_line = {index: position for position, (index, _) in enumerate(lines)}
    order = sorted(range(len(items)), key=last_line.__getitem__)
    want = [expected(items[index], limit) for index in order]
    for kind in {w.flags for w in want}:
        event(f"stored {kind!r}")  # --hypothesis-show-statistics: what the examples covered
    assert [dataclasses.replace(w, cut_bytes=0) for w in want] == got
    assert counters.lines == len(want)
    assert counters.malformed == sum(Flag.MALFORMED in w.flags for w in want)
    assert counters.partial_merges == sum(isinstance(item, Split) for item in items)
    assert counters.truncated == sum(Flag.TRUNCATED in w.flags for w in want)
    assert counters.truncated_bytes == sum(w.cut_bytes for w in want)


@given(text=texts, limit=limits, stream=st.sampled_from(STREAMS), data=st.data())
def test_docker_16k_partials_merge_back_to_the_line_written(
    text: str, limit: int, stream: str, data: st.DataObject
) -> None:
    """dockerd's own split: 16384-byte chunks of the line's bytes, a character cut between two
    chunks written as U+FFFD by Go's encoder; read in calls cut anywhere between records."""
    raw = text.encode()
    chunks = [raw[i : i + 16384] for i in range(0, len(raw), 16384)] or [b""]
    records = [
        encode(
            chunk.decode("utf-8", "replace") + ("\n" if n == len(chunks) - 1 else ""),
            stream,
            docker_time(BASE_NS + n),
            go_escapes=True,
            attrs=False,
        )
        for n, chunk in enumerate(chunks)
    ]
    written = "".join(chunk.decode("utf-8", "replace") for chunk in chunks).encode()
    parser = JsonFileParser(limit)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(records)), max_size=3))))
    stored: list[bytes] = []
    for start, end in zip([0, *cuts], [*cuts, len(records)], strict=True):
        stored += parser.parse(b"".join(r + b"\n" for r in records[start:end]), NOW_NS).records
        parser = JsonFileParser(limit, pending=parser.pending)
    [record] = stored
    value = orjson.loads(record)
    keep = head_bytes(written, limit - 1)
    assert value["log"] == written[:keep].decode() + "\n"
    assert value["time"] == docker_time(BASE_NS)
    assert value.get("nk", 0) == (Flag.MERGED if len(chunks) > 1 else 0) | (
        Flag.TRUNCATED if keep < len(written) else 0
    )


@given(
    data=st.binary(max_size=3000)
    | st.builds(lambda items: b"\n".join(line for item in items for line in item.lines()), logs()),
    limit=limits,
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
    calls=st.lists(
        st.sampled_from(["parse", "unterminated", "restart", "flush"]), min_size=9, max_size=9
    ),
)
def test_any_bytes_cut_anywhere_never_raise_and_stay_bounded(
    data: bytes, limit: int, cuts: list[int], calls: list[str]
) -> None:
    """Bytes of any kind, cut at any byte (mid-line, mid-character), through every entry point:
    no exception, every record a stored json-file record, pending bounded."""
    bounds = sorted({min(cut, len(data)) for cut in cuts})
    parser = JsonFileParser(limit)
    produced = 0
    for (start, end), call in zip(
        zip([0, *bounds], [*bounds, len(data)], strict=True), calls, strict=False
    ):
        piece = data[start:end]
        if call == "unterminated":
            parsed = parser.parse_unterminated(piece, NOW_NS)
        elif call == "flush":  # the container is gone: what is pending is stored as it is
            before = parser.parse(piece, NOW_NS)
            parsed = parser.flush(NOW_NS)
            parsed.records[:0] = before.records
            assert parser.pending == {}
        else:
            parsed = parser.parse(piece, NOW_NS)
        for record in parsed.records:
            value = actual(record)
            assert len(value.log.encode()) <= max(limit, 4 * (limit - 1) + 1)
            assert not value.flags & ~(Flag.MERGED | Flag.TRUNCATED | Flag.MALFORMED)
        produced += len(parsed.records)
        assert parser.counters.lines == produced
        assert_bounded(parser)
        if call == "restart":
            parser = JsonFileParser(limit, pending=parser.pending)
            produced = 0
            assert_bounded(parser)


@given(
    limit=st.integers(MIN_LINE_BYTES, 2000),
    items=st.lists(st.one_of(splits(), _wholes()), max_size=30),
    restarts=st.lists(st.booleans(), min_size=30, max_size=30),
)
@settings(max_examples=max(10, settings.default.max_examples // 2))
def test_pending_partials_never_hold_more_than_the_limit(
    limit: int, items: list[Split | Whole], restarts: list[bool]
) -> None:
    """Memory bounded whatever a container writes: partials of a line far over the limit are
    dropped as they arrive, measured on what the parser holds between calls."""
    parser = JsonFileParser(limit)
    for item, restart in zip(items, restarts, strict=False):
        for line in item.lines():
            parser.parse(line + b"\n", NOW_NS)
            assert_bounded(parser)
        if restart:
            parser = JsonFileParser(limit, pending=parser.pending)
            assert_bounded(parser)


@given(text=st.text(), size=st.integers(-2, 200))
def test_head_bytes_cuts_at_the_longest_whole_character_prefix(text: str, size: int) -> None:
    raw = text.encode()
    keep = head_bytes(raw, size)
    assert keep <= max(size, 0) or keep == len(raw) <= size
    raw[:keep].decode()  # whole characters only
    if keep < len(raw):
        # Not one more character fits.
        nxt = keep + 1
        while nxt < len(raw) and (raw[nxt] & 0xC0) == 0x80:
            nxt += 1
        assert nxt > size
