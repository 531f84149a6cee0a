"""Time as the agent reads and writes it: one parser for RFC 3339, one way to write it.

Docker writes RFC3339Nano (``2026-11-23T10:00:00.123456789Z``, trailing zeros trimmed, so the
strings do not sort as text) and ``0001-01-01T00:00:00Z`` for "never"; Kubernetes writes
second precision with ``Z``. :func:`docker_time_ns` reads both exactly, cheaply (the whole-second
part repeats between log lines and is cached), and is what the log hot path calls; the other
readers are lenient wrappers that say None for a missing, zero or unreadable time.
"""

import datetime
import functools

NANOS = 1_000_000_000
DOCKER_ZERO_TIME = "0001-"  # how Docker's "never" (0001-01-01T00:00:00Z) begins


def docker_time_ns(value: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time (a zone, ``Z`` or none for UTC).

    Raises ValueError when ``value`` is not such a time.
    """
    whole = value[:19]
    rest = value[19:]
    seconds = _epoch_seconds(whole)
    fraction = 0
    zone_at = 0
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        digits = rest[1:end]
        fraction = int((digits + "000000000")[:9]) if digits else 0
        zone_at = end
    zone = rest[zone_at:]
    if zone not in ("Z", ""):
        if zone[0] not in "+-" or len(zone) != 6 or zone[3] != ":":
            raise ValueError(f"not an RFC 3339 time zone: {zone!r}")
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        seconds -= sign * (hours * 3600 + minutes * 60)
    return seconds * NANOS + fraction


@functools.lru_cache(maxsize=4096)
def _epoch_seconds(whole: str) -> int:
    moment = datetime.datetime.fromisoformat(whole)
    if moment.tzinfo is not None:  # a date-time shorter than 19 characters is not RFC 3339
        raise ValueError(f"not an RFC 3339 time: {whole!r}")
    return int(moment.replace(tzinfo=datetime.UTC).timestamp())


def parse_ns(text: object) -> int | None:
    """Like :func:`docker_time_ns`; None for no text, Docker's zero time or an unreadable one."""
    if not isinstance(text, str) or not text or text.startswith(DOCKER_ZERO_TIME):
        return None
    try:
        return docker_time_ns(text)
    except (ValueError, OverflowError):
        return None


def parse_seconds(text: object) -> float | None:
    """Unix seconds of an RFC 3339 time; None as :func:`parse_ns` says."""
    ns = parse_ns(text)
    return None if ns is None else ns / NANOS


def parse_datetime(text: object) -> datetime.datetime | None:
    """An aware UTC datetime (microseconds) of an RFC 3339 time; None as :func:`parse_ns` says."""
    ns = parse_ns(text)
    if ns is None:
        return None
    seconds, fraction = divmod(ns, NANOS)
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment + datetime.timedelta(microseconds=fraction // 1000)


def rfc3339(moment: datetime.datetime) -> str:
    """As Kubernetes writes time: UTC, second precision, ``Z``."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_ns(ns: int) -> str:
    """The inverse of :func:`docker_time_ns`, with all nine fraction digits."""
    seconds, fraction = divmod(ns, NANOS)
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)
