"""One RFC 3339 parser for Docker's and Kubernetes' times (api/times.py)."""

import datetime

import pytest

from nodekeeper.api.times import (
    NANOS,
    docker_time_ns,
    parse_datetime,
    parse_ns,
    parse_seconds,
    rfc3339,
    rfc3339_ns,
)

EPOCH_2026 = int(datetime.datetime(2026, 11, 23, 10, 0, tzinfo=datetime.UTC).timestamp())


def test_docker_nanoseconds_are_read_exactly_whatever_zeros_docker_trimmed() -> None:
    assert docker_time_ns("2026-11-23T10:00:00.123456789Z") == EPOCH_2026 * NANOS + 123456789
    assert docker_time_ns("2026-11-23T10:00:00.1Z") == EPOCH_2026 * NANOS + 100_000_000
    # Text order breaks here ("...00.1Z" > "...00.123Z"); time order does not.
    assert docker_time_ns("2026-11-23T10:00:00.1Z") < docker_time_ns("2026-11-23T10:00:00.123Z")


def test_kubernetes_seconds_zones_and_no_zone_are_utc_unless_said() -> None:
    assert docker_time_ns("2026-11-23T10:00:00Z") == EPOCH_2026 * NANOS
    assert docker_time_ns("2026-11-23T10:00:00") == EPOCH_2026 * NANOS
    assert docker_time_ns("2026-11-23T12:00:00+02:00") == EPOCH_2026 * NANOS
    assert docker_time_ns("2026-11-23T09:30:00.5-00:30") == EPOCH_2026 * NANOS + NANOS // 2


@pytest.mark.parametrize(
    "garbage", ["", "yesterday", "2026-11-23T10:00:00+2", "2026-13-01T00:00:00Z"]
)
def test_garbage_raises_in_the_strict_reader_and_is_none_in_the_lenient_ones(garbage: str) -> None:
    if garbage:
        with pytest.raises(ValueError):  # noqa: PT011 - the type is the contract
            docker_time_ns(garbage)
    assert parse_ns(garbage) is None
    assert parse_seconds(garbage) is None
    assert parse_datetime(garbage) is None


def test_docker_zero_time_and_missing_values_mean_unknown() -> None:
    assert parse_ns("0001-01-01T00:00:00Z") is None
    assert parse_seconds(None) is None
    assert parse_datetime(12) is None


def test_lenient_readers_agree_with_the_strict_one() -> None:
    text = "2026-11-23T10:00:00.250000999Z"
    assert parse_seconds(text) == pytest.approx(EPOCH_2026 + 0.25)
    moment = parse_datetime(text)
    assert moment == datetime.datetime(2026, 11, 23, 10, 0, 0, 250000, tzinfo=datetime.UTC)


def test_writers_are_the_inverse_of_the_reader() -> None:
    ns = EPOCH_2026 * NANOS + 7
    assert rfc3339_ns(ns) == "2026-11-23T10:00:00.000000007Z"
    assert docker_time_ns(rfc3339_ns(ns)) == ns
    moment = datetime.datetime(
        2026, 11, 23, 11, 0, 0, 999, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
    )
    assert rfc3339(moment) == "2026-11-23T10:00:00Z"
