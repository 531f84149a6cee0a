"""Docker json-file lines to stored records: the hot path of log tailing.

A json-file log holds one JSON object a line, ``{"log": ..., "stream": ..., "time": ...}``, for
both streams of one container. Nearly every line is stored exactly as Docker wrote it: the parser
only checks it (one ``orjson.loads``) and appends the original bytes, so no line is re-encoded.
The exceptions, each flagged in the record's ``nk`` bitmask (:class:`~.records.Flag`):

- MERGED: dockerd splits a line longer than 16 KiB into partial records whose ``log`` lacks the
  trailing newline; they are joined per stream (stdout and stderr interleave independently), and
  the merged line carries the time of its first partial. The text waiting for the rest survives
  a restart through :attr:`JsonFileParser.pending`, which the follower keeps in its checkpoint.
- TRUNCATED: a line longer than ``max_line_bytes`` keeps its head (whole UTF-8 characters and its
  newline); what was cut is counted, never silent. Partials beyond the limit are dropped as they
  arrive, so memory is bounded whatever a container writes.
- MALFORMED: anything that is not a json-file record (invalid JSON or UTF-8, NUL bytes, wrong
  types, an empty line, an unparseable time) is kept raw, decoded with backslash escapes, with
  stream ``unknown`` and the time of reading.

The parser never raises on input. To stay cheap, a record's ``time`` is parsed only where a Docker
time is needed (the first and last record of each call, and records that are re-encoded anyway);
other records keep their time as Docker wrote it, unchecked.
"""

import dataclasses
import logging
from collections.abc import Mapping

import orjson

from nodekeeper.api.times import docker_time_ns, rfc3339_ns
from nodekeeper.logs.records import Flag

logger = logging.getLogger(__name__)

# Docker writes only these two; a partial record of any other stream is kept as it is, so that
# garbage cannot make the parser hold one pending line per invented stream.
MERGED_STREAMS = frozenset({"stdout", "stderr"})

# The smallest limit that still holds a newline and any one UTF-8 character.
MIN_LINE_BYTES = 8

_MERGED = int(Flag.MERGED)
_TRUNCATED = int(Flag.TRUNCATED)
_MALFORMED = int(Flag.MALFORMED)


@dataclasses.dataclass
class ParseCounters:
    """Running totals of one parser, read by metrics."""

    lines: int = 0  # records produced
    malformed: int = 0  # records kept raw because they were not json-file records
    partial_merges: int = 0  # lines joined from Docker's 16 KiB partials
    truncated: int = 0  # lines cut at max_line_bytes
    truncated_bytes: int = 0  # bytes cut away (reported, never silent)


@dataclasses.dataclass(frozen=True)
class Parsed:
    records: list[bytes]  # stored records, one JSON object each, no newline
    first_ns: int  # docker_time_ns of the first / last record with a Docker time; 0 if none
    last_ns: int


@dataclasses.dataclass
class _PendingLine:
    """A line of one stream whose final partial is not read yet."""

    time: str  # of the first partial: the merged line's time
    text: bytearray  # UTF-8, at most max_line_bytes - 1 (the newline comes with the last partial)
    cut_bytes: int = 0  # bytes dropped beyond the limit; once non-zero, later partials are too


def head_bytes(text: bytes, size: int) -> int:
    """How many bytes of ``text`` to keep to cut it at ``size`` without splitting a character."""
    if size >= len(text):
        return len(text)
    end = max(size, 0)
    # Step back over continuation bytes (10xxxxxx): at most three in valid UTF-8.
    while end > 0 and end > size - 3 and (text[end] & 0xC0) == 0x80:
        end -= 1
    return end


class JsonFileParser:
    """One per container: a json-file log holds both streams.

    ``pending`` is what :attr:`pending` returned before a restart; entries that cannot be read
    back (another version, a damaged checkpoint) are dropped with a warning.
    """

    def __init__(self, max_line_bytes: int, pending: Mapping[str, bytes] | None = None) -> None:
        if max_line_bytes < MIN_LINE_BYTES:
            raise ValueError(f"max_line_bytes must be at least {MIN_LINE_BYTES}: {max_line_bytes}")
        self.max_line_bytes = max_line_bytes
        self.counters = ParseCounters()
        self._pending: dict[str, _PendingLine] = {}
        # What `pending` returns, kept until the pending lines change: the follower asks per batch.
        self._pending_saved: dict[str, bytes] | None = None
        for stream, saved in (pending or {}).items():
            restored = self._restore(stream, saved)
            if restored is not None:
                self._pending[stream] = restored

    @property
    def pending(self) -> dict[str, bytes]:
        """stream -> the line waiting for its last partial, as opaque bytes for a checkpoint."""
        if self._pending_saved is None:
            self._pending_saved = {
                stream: orjson.dumps(
                    {"time": line.time, "log": line.text.decode(), "cut_bytes": line.cut_bytes}
                )
                for stream, line in self._pending.items()
            }
        return dict(self._pending_saved)

    def parse(self, data: bytes, now_ns: int) -> Parsed:
        """Records of ``data``: complete lines, each ending in a newline.

        Bytes after the last newline (the follower never passes any) are kept as by
        :meth:`parse_unterminated`.
        """
        lines = data.split(b"\n")
        tail = lines.pop()
        records: list[bytes] = []
        # Indices of records that have no Docker time (malformed: the time of reading).
        timeless: set[int] = set()
        append = records.append
        loads = orjson.loads
        limit = self.max_line_bytes
        pending = self._pending
        str_ = str
        for line in lines:
            try:
                record = loads(line)
                log = record["log"]
                stream = record["stream"]
                time = record["time"]
            except (ValueError, TypeError, KeyError):
                timeless.add(len(records))
                append(self._malformed(line, now_ns))
                continue
            if (
                log.__class__ is str_
                and stream.__class__ is str_
                and time.__class__ is str_
                and log[-1:] == "\n"
                and len(line) <= limit
                and (not pending or stream not in pending)
            ):
                append(line)
                continue
            self._slow(line, log, stream, time, now_ns, records, timeless)
        if tail:
            timeless.add(len(records))
            append(self._malformed(tail, now_ns))
        return self._finish(records, timeless, now_ns)

    def parse_unterminated(self, data: bytes, now_ns: int) -> Parsed:
        """Bytes at the end of a file that never got a newline, kept as one malformed record.

        A container that died mid-write, a file cut short, or the head of an over-long garbage
        line the follower stopped waiting on: none of them is a json-file record.
        """
        if not data:
            return Parsed([], 0, 0)
        record = self._malformed(data, now_ns)
        self.counters.lines += 1
        return Parsed([record], 0, 0)

    def flush(self, now_ns: int) -> Parsed:
        """Store the lines still waiting for their last partial, for a container that is gone.

        Each becomes a MERGED record without a trailing newline (Docker never ended it).
        """
        records: list[bytes] = []
        for stream, line in self._pending.items():
            flags = _MERGED
            if line.cut_bytes:
                flags |= _TRUNCATED
                self.counters.truncated += 1
                self.counters.truncated_bytes += line.cut_bytes
            self.counters.partial_merges += 1
            records.append(
                orjson.dumps(
                    {"log": line.text.decode(), "stream": stream, "time": line.time, "nk": flags}
                )
            )
        self._pending.clear()
        self._pending_saved = None
        return self._finish(records, set(), now_ns)

    # --- the rare cases, out of the hot loop ---

    def _slow(
        self,
        line: bytes,
        log: object,
        stream: object,
        time: object,
        now_ns: int,
        records: list[bytes],
        timeless: set[int],
    ) -> None:
        """A record the fast path did not take: wrong types, a partial, too long, or merging."""
        if not (isinstance(log, str) and isinstance(stream, str) and isinstance(time, str)):
            timeless.add(len(records))
            records.append(self._malformed(line, now_ns))
            return
        complete = log.endswith("\n")
        pending_line = self._pending.get(stream)
        if pending_line is None and (complete or stream not in MERGED_STREAMS):
            record = self._whole(line, log, stream, time)
            if record is None:
                timeless.add(len(records))
                records.append(self._malformed(line, now_ns))
            else:
                records.append(record)
            return
        if pending_line is None:
            # The first partial: its time becomes the merged line's time, so it must parse.
            if not _valid_time(time):
                timeless.add(len(records))
                records.append(self._malformed(line, now_ns))
                return
            pending_line = self._pending[stream] = _PendingLine(time, bytearray())
        self._pending_saved = None
        text = log.encode()
        if complete:
            text = text[:-1]
        self._extend(pending_line, text)
        if not complete:
            return
        del self._pending[stream]
        flags = _MERGED
        if pending_line.cut_bytes:
            flags |= _TRUNCATED
            self.counters.truncated += 1
            self.counters.truncated_bytes += pending_line.cut_bytes
        self.counters.partial_merges += 1
        merged = pending_line.text.decode() + "\n"
        records.append(
            orjson.dumps({"log": merged, "stream": stream, "time": pending_line.time, "nk": flags})
        )

    def _extend(self, line: _PendingLine, text: bytes) -> None:
        """Add a partial's text to a pending line, cutting at the limit (newline reserved)."""
        if line.cut_bytes:
            line.cut_bytes += len(text)
            return
        room = self.max_line_bytes - 1 - len(line.text)
        if len(text) <= room:
            line.text += text
            return
        keep = head_bytes(text, room)
        line.text += text[:keep]
        line.cut_bytes += len(text) - keep

    def _whole(self, line: bytes, log: str, stream: str, time: str) -> bytes | None:
        """A record that is not merged: as written, or cut at the limit; None if its time is bad."""
        limit = self.max_line_bytes
        if len(line) <= limit or len(log) * 4 <= limit:
            # The encoded line is never shorter than its text's UTF-8, nor is 4 bytes a char.
            return line
        if len(log) <= limit:
            size = len(log.encode())
            if size <= limit:
                return line
        if not _valid_time(time):
            return None
        text = log.encode()
        newline = log.endswith("\n")
        body = text[:-1] if newline else text
        keep = head_bytes(body, limit - 1 if newline else limit)
        self.counters.truncated += 1
        self.counters.truncated_bytes += len(body) - keep
        kept = body[:keep].decode() + ("\n" if newline else "")
        return orjson.dumps({"log": kept, "stream": stream, "time": time, "nk": _TRUNCATED})

    def _malformed(self, raw: bytes, now_ns: int) -> bytes:
        """Anything that is not a json-file record, kept raw (up to the limit) and flagged."""
        self.counters.malformed += 1
        flags = _MALFORMED
        room = self.max_line_bytes - 1
        if len(raw) > room:
            keep = head_bytes(raw, room)
            self.counters.truncated += 1
            self.counters.truncated_bytes += len(raw) - keep
            raw = raw[:keep]
            flags |= _TRUNCATED
        text = raw.decode("utf-8", "backslashreplace") + "\n"
        return orjson.dumps(
            {"log": text, "stream": "unknown", "time": rfc3339_ns(now_ns), "nk": flags}
        )

    def _finish(self, records: list[bytes], timeless: set[int], now_ns: int) -> Parsed:
        """Docker times of the first and last records that have one; a bad one is malformed."""
        first_ns = last_ns = 0
        first = 0
        while first < len(records):
            found = self._docker_time(records, first, timeless, now_ns)
            if found is not None:
                first_ns = last_ns = found
                break
            first += 1
        last = len(records) - 1
        while last > first:
            found = self._docker_time(records, last, timeless, now_ns)
            if found is not None:
                last_ns = found
                break
            last -= 1
        self.counters.lines += len(records)
        return Parsed(records, first_ns, last_ns)

    def _docker_time(
        self, records: list[bytes], index: int, timeless: set[int], now_ns: int
    ) -> int | None:
        """The Docker time of a stored record; None if it has none (turned malformed if bad).

        Only records stored as Docker wrote them can have a bad time here (the others were
        checked when they were re-encoded), so the stored bytes are the original line.
        """
        if index in timeless:
            return None
        value = orjson.loads(records[index])["time"]
        try:
            return docker_time_ns(value)
        except (ValueError, IndexError, OverflowError):
            pass
        timeless.add(index)
        records[index] = self._malformed(records[index], now_ns)
        return None

    def _restore(self, stream: str, saved: bytes) -> _PendingLine | None:
        """A pending line from a checkpoint, or None (with a warning) if it cannot be read."""
        try:
            value = orjson.loads(saved)
            time, log, cut_bytes = value["time"], value["log"], value["cut_bytes"]
        except (ValueError, TypeError, KeyError):
            time = log = cut_bytes = None
        if not (
            stream in MERGED_STREAMS
            and isinstance(time, str)
            and isinstance(log, str)
            and isinstance(cut_bytes, int)
            and _valid_time(time)
        ):
            logger.warning("Dropped the unreadable pending partial line of stream %r", stream)
            return None
        line = _PendingLine(time, bytearray())
        # Through the limit again: it may be lower than when the line was saved.
        self._extend(line, log.encode())
        line.cut_bytes += max(cut_bytes, 0)
        return line


def _valid_time(value: str) -> bool:
    try:
        docker_time_ns(value)
    except (ValueError, IndexError, OverflowError):
        return False
    return True
