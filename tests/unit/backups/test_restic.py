"""restic's --json output, read leniently."""

import json

from nodekeeper.backups import restic
from nodekeeper.backups.restic import Summary

SUMMARY = {
    "message_type": "summary",
    "files_new": 3,
    "files_changed": 1,
    "files_unmodified": 40,
    "dirs_new": 2,
    "data_added": 12345,
    "total_bytes_processed": 999999,
    "snapshot_id": "4f2c1a9b",
    "something_restic_adds_later": {"x": 1},
}


def lines(*messages: object) -> list[str]:
    return [m if isinstance(m, str) else json.dumps(m) for m in messages]


def test_the_summary_gives_figures_and_snapshot() -> None:
    report = restic.parse(lines({"message_type": "status", "percent_done": 0.5}, SUMMARY))
    assert report.summary == Summary(3, 1, 40, 12345, 999999)
    assert report.snapshot_id == "4f2c1a9b"
    assert report.error_message is None
    assert report.summary.as_status() == {
        "filesNew": 3,
        "filesChanged": 1,
        "filesUnmodified": 40,
        "dataAddedBytes": 12345,
        "totalBytesProcessed": 999999,
    }


def test_missing_fields_are_zero_and_wrong_types_are_ignored() -> None:
    report = restic.parse(lines({"message_type": "summary", "files_new": "many", "data_added": 7}))
    assert report.summary == Summary(data_added=7)
    assert report.snapshot_id is None


def test_garbage_lines_are_skipped() -> None:
    report = restic.parse(
        [
            "open repository",
            "{not json",
            "[1, 2]",
            '{"no_type": true}',
            "",
            "   " + json.dumps(SUMMARY) + "   ",
            "\x00\xff binary",
        ]
    )
    assert report.summary is not None
    assert report.summary.files_new == 3


def test_no_summary_means_none() -> None:
    assert restic.parse(["hello", "world"]) == restic.TaskReport()


def test_the_last_summary_wins() -> None:
    report = restic.parse(lines(SUMMARY, {**SUMMARY, "files_new": 9, "snapshot_id": "b"}))
    assert report.summary is not None
    assert report.summary.files_new == 9
    assert report.snapshot_id == "b"


def test_exit_error_is_preferred_over_item_errors() -> None:
    report = restic.parse(
        lines(
            {"message_type": "error", "error": {"message": "permission denied"}, "item": "/a"},
            {"message_type": "exit_error", "code": 12, "message": "Fatal: wrong password"},
            {"message_type": "error", "error": {"message": "later item error"}, "item": "/b"},
        )
    )
    assert report.error_message == "Fatal: wrong password"


def test_without_exit_error_the_last_item_error_is_kept_with_its_path() -> None:
    report = restic.parse(
        lines(
            {"message_type": "error", "error": {"message": "permission denied"}, "item": "/a"},
            {"message_type": "error", "error": {"message": "no such file"}, "item": "/b"},
        )
    )
    assert report.error_message == "/b: no such file"


def test_error_messages_are_capped() -> None:
    report = restic.parse(lines({"message_type": "exit_error", "message": "x" * 10000}))
    assert report.error_message is not None
    assert len(report.error_message) == restic.ERROR_MESSAGE_MAX_CHARS
