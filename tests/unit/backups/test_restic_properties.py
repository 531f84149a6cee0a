"""Properties of the restic ``--json`` reader on random task output.

A task prints anything it likes; the reader skips what is not restic's and must never raise (a
BackupRun's result is read from it). The last summary wins, wherever it stands among the rest.
"""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodekeeper.backups import restic
from nodekeeper.backups.restic import ERROR_MESSAGE_MAX_CHARS, Summary

FIGURES = ("files_new", "files_changed", "files_unmodified", "data_added", "total_bytes_processed")

# JSON values of any shape, finite numbers only (non-finite ones: see the xfail below), nesting
# far below Python's recursion limit (see the other one).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
kinds = st.sampled_from(["status", "error", "exit_error", "verbose_status", "", "other"])
messages = st.builds(
    lambda kind, fields: {**fields, "message_type": kind},
    kinds | json_values,
    st.dictionaries(
        st.sampled_from(
            [*FIGURES, "snapshot_id", "message", "error", "item", "code", "percent_done"]
        ),
        json_values,
        max_size=6,
    ),
)
# Anything but a summary: plain text, any JSON, restic's other messages, broken JSON.
not_summaries = st.one_of(
    st.text(max_size=80),
    json_values.map(json.dumps),
    messages.map(json.dumps),
    messages.map(lambda message: json.dumps(message)[:-1]),  # cut short
    st.builds(
        lambda pad, m: pad + json.dumps(m) + pad, st.sampled_from([" ", "\t", "\r"]), messages
    ),
).filter(lambda line: "summary" not in line)


@given(lines=st.lists(st.one_of(not_summaries, messages.map(json.dumps)), max_size=30))
def test_any_output_is_read_without_an_exception(lines: list[str]) -> None:
    report = restic.parse(lines)
    if report.summary is not None:
        assert all(value >= 0 for value in report.summary.as_status().values())
    if report.error_message is not None:
        assert 0 < len(report.error_message) <= ERROR_MESSAGE_MAX_CHARS
    assert report.snapshot_id is None or isinstance(report.snapshot_id, str)


@given(
    before=st.lists(not_summaries, max_size=15),
    after=st.lists(not_summaries, max_size=15),
    figures=st.fixed_dictionaries({name: st.integers(0, 2**63) for name in FIGURES}),
    snapshot=st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=64),
    extra=st.dictionaries(
        st.sampled_from(["dirs_new", "total_duration", "backup_start"]), json_values
    ),
    spaces=st.sampled_from(["", " ", "  \t"]),
)
def test_a_summary_among_garbage_is_found(
    before: list[str],
    after: list[str],
    figures: dict[str, int],
    snapshot: str,
    extra: dict[str, object],
    spaces: str,
) -> None:
    summary = {"message_type": "summary", **extra, **figures, "snapshot_id": snapshot}
    report = restic.parse([*before, spaces + json.dumps(summary) + spaces, *after])
    assert report.summary == Summary(**figures)
    assert report.snapshot_id == snapshot


@pytest.mark.xfail(
    strict=True,
    reason="bug: a summary figure that is not finite (NaN, Infinity, 1e999: Python's json "
    "reads them) raises ValueError or OverflowError out of restic.parse",
)
@given(literal=st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"]))
def test_a_summary_with_a_number_that_is_not_finite_is_read(literal: str) -> None:
    line = '{"message_type": "summary", "files_new": ' + literal + ', "snapshot_id": "ab12"}'
    report = restic.parse([line])
    assert report.snapshot_id == "ab12"


@pytest.mark.xfail(
    strict=True,
    raises=RecursionError,
    reason="bug: a line of deeply nested JSON raises RecursionError out of restic.parse",
)
@given(depth=st.integers(2_000, 20_000))
def test_deeply_nested_output_is_skipped(depth: int) -> None:
    line = '{"a": ' + "[" * depth + "]" * depth + "}"
    assert restic.parse([line, '{"message_type": "summary", "files_new": 1}']).summary == Summary(1)
