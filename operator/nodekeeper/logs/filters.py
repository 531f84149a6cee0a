"""A log query from what a user typed: ``nodekeeper logs`` flags and ``/api/v1/logs`` parameters.

Both take the same names (``container``, ``workload``, ``namespace``, ``pod``, ``stream``,
``since``, ``until``, ``contains``, ``limit``, ``cursor``), so what works on the command line works
over HTTP. Times are RFC 3339 (``2026-11-23T10:00:00Z``) or an age (``90s``, ``15m``, ``2h``,
``7d``) counted back from now. A bad value raises :class:`FilterError` with a sentence that says
what is accepted.
"""

import re
from collections.abc import Mapping

from nodekeeper.api.times import NANOS, parse_ns
from nodekeeper.logs.query import MAX_LIMIT, LogQuery

FIELDS = ("container", "workload", "namespace", "pod", "stream", "contains", "cursor")
_AGE = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class FilterError(ValueError):
    """A query parameter a user gave is not understood; the message says what is."""


def moment_ns(text: str, now_ns: int, name: str) -> int:
    age = _AGE.match(text)
    if age:
        return now_ns - int(float(age.group(1)) * _UNIT_SECONDS[age.group(2)] * NANOS)
    moment = parse_ns(text)
    if moment is None:
        raise FilterError(
            f"{name}={text!r}: use RFC 3339 (2026-11-23T10:00:00Z) or an age such as 15m, 2h, 7d"
        )
    return moment


def build_query(params: Mapping[str, str | None], now_ns: int) -> LogQuery:
    """The query for ``params``; unknown names are refused so typos do not widen a query."""
    unknown = set(params) - {*FIELDS, "since", "until", "limit", "follow"}
    if unknown:
        known = ", ".join((*FIELDS, "since", "until", "limit"))
        raise FilterError(f"unknown parameter {sorted(unknown)[0]!r}: use {known}")
    given = {name: value for name, value in params.items() if value not in (None, "")}
    stream = given.get("stream")
    if stream is not None and stream not in ("stdout", "stderr", "unknown"):
        raise FilterError(f"stream={stream!r}: use stdout, stderr or unknown (malformed records)")
    limit = 1000
    if "limit" in given:
        try:
            limit = int(str(given["limit"]))
        except ValueError:
            raise FilterError(f"limit={given['limit']!r}: use a whole number") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise FilterError(f"limit={limit}: use 1 to {MAX_LIMIT}")
    since = given.get("since")
    until = given.get("until")
    try:
        return _query(given, stream, limit, since, until, now_ns)
    except FilterError:
        raise
    except ValueError as e:  # the query's own checks, e.g. a cursor that is not one
        raise FilterError(str(e)) from None


def _query(
    given: Mapping[str, str | None],
    stream: str | None,
    limit: int,
    since: str | None,
    until: str | None,
    now_ns: int,
) -> LogQuery:
    return LogQuery(
        container=given.get("container"),
        workload=given.get("workload"),
        namespace=given.get("namespace"),
        pod=given.get("pod"),
        stream=stream,
        since_ns=moment_ns(since, now_ns, "since") if since else None,
        until_ns=moment_ns(until, now_ns, "until") if until else None,
        contains=given.get("contains"),
        limit=limit,
        cursor=given.get("cursor"),
    )
