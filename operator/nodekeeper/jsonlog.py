"""Structured logs: one JSON object a line on stderr, so node log collectors parse them as is.

Fields: ``time`` (RFC 3339 with milliseconds), ``level``, ``logger``, ``message``, and whatever a
call passes in ``extra={...}`` (e.g. ``node``, ``object``). kopf's per-object loggers add
``k8s_ref``, which is kept. Exceptions go in ``error`` as one string.
"""

import datetime
import logging
import sys
from typing import Any

import orjson

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# kopf attaches its whole settings object and internal flags to its records; not for logs.
_KOPF_INTERNAL = {"settings", "k8s_skip"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        entry: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in _KOPF_INTERNAL and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure(*, level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("kubernetes").setLevel(max(logging.WARNING, root.level))
    # urllib3 logs each retry as a warning; the error that follows says what matters.
    logging.getLogger("urllib3").setLevel(max(logging.ERROR, root.level))
