"""Logs are one JSON object a line, with the fields a log collector indexes."""

import json
import logging

import pytest

from nodekeeper.jsonlog import JsonFormatter


def test_a_record_becomes_one_json_line_with_extras() -> None:
    record = logging.LogRecord(
        "nodekeeper.x", logging.WARNING, __file__, 1, "hello %s", ("w",), None
    )
    record.node = "n1"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert entry["logger"] == "nodekeeper.x"
    assert entry["message"] == "hello w"
    assert entry["node"] == "n1"
    assert entry["time"].endswith("Z")


def test_an_exception_is_one_field() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: bad" in entry["error"]


@pytest.mark.parametrize("value", [object(), {"nested": [1, 2]}])
def test_values_that_are_not_json_are_written_as_text(value: object) -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    record.thing = value
    assert "thing" in json.loads(JsonFormatter().format(record))
