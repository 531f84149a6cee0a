"""restic's ``--json`` output, read leniently into what a BackupRun's status shows.

A task prints anything it likes; only lines that are JSON objects with a ``message_type`` count.
The last ``summary`` gives the figures and the snapshot id (missing figures are zero, unknown
fields are ignored); an ``exit_error`` (restic's fatal error) is the error message, else the last
``error`` line. Everything else, including garbage, is skipped.
"""

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

ERROR_MESSAGE_MAX_CHARS = 1024


@dataclasses.dataclass(frozen=True)
class Summary:
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    data_added: int = 0
    total_bytes_processed: int = 0

    def as_status(self) -> dict[str, int]:
        return {
            "filesNew": self.files_new,
            "filesChanged": self.files_changed,
            "filesUnmodified": self.files_unmodified,
            "dataAddedBytes": self.data_added,
            "totalBytesProcessed": self.total_bytes_processed,
        }


@dataclasses.dataclass(frozen=True)
class TaskReport:
    summary: Summary | None = None
    snapshot_id: str | None = None
    error_message: str | None = None


def _count(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float):
        return max(int(value), 0)
    return 0


def _summary(message: dict[str, Any]) -> Summary:
    return Summary(
        files_new=_count(message.get("files_new")),
        files_changed=_count(message.get("files_changed")),
        files_unmodified=_count(message.get("files_unmodified")),
        data_added=_count(message.get("data_added")),
        total_bytes_processed=_count(message.get("total_bytes_processed")),
    )


def _error_text(message: dict[str, Any]) -> str | None:
    # exit_error: {"message": "..."}; error: {"error": {"message": "..."}, "item": "/path"}
    text = message.get("message")
    error = message.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        text = error["message"]
    elif isinstance(error, str):
        text = error
    if not isinstance(text, str) or not text.strip():
        return None
    item = message.get("item")
    if isinstance(item, str) and item:
        text = f"{item}: {text}"
    return cap(text.strip())


def cap(text: str, limit: int = ERROR_MESSAGE_MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse(lines: Iterable[str]) -> TaskReport:
    summary: Summary | None = None
    snapshot_id: str | None = None
    exit_error: str | None = None
    last_error: str | None = None
    for line in lines:
        text = line.strip()
        if not text.startswith("{"):
            continue
        try:
            message = json.loads(text)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        kind = message.get("message_type")
        if kind == "summary":
            summary = _summary(message)
            snapshot = message.get("snapshot_id")
            snapshot_id = snapshot if isinstance(snapshot, str) and snapshot else snapshot_id
        elif kind == "exit_error":
            exit_error = _error_text(message) or exit_error
        elif kind == "error":
            last_error = _error_text(message) or last_error
    return TaskReport(
        summary=summary, snapshot_id=snapshot_id, error_message=exit_error or last_error
    )
