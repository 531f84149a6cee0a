"""Timestamps in the one format Kubernetes writes them: RFC 3339, UTC, second precision, ``Z``."""

import datetime


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)
