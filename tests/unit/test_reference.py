"""docs/reference.md lists exactly the settings, metrics, reasons and codes the code has."""

import re
from pathlib import Path

from nodekeeper.api import codes
from nodekeeper.config import Settings
from nodekeeper.metrics import Metrics
from nodekeeper.runtime import errors

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"


def first_column(section: str) -> set[str]:
    """The backticked names in the first column of the table under ``## section``."""
    text = REFERENCE.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", body, flags=re.MULTILINE))


def test_every_setting_is_documented() -> None:
    assert first_column("Settings") == set(Settings.model_fields)


def test_every_metric_is_documented() -> None:
    names = set()
    for family in Metrics().registry.collect():
        # Info metrics are exposed with an _info suffix; counters with _total.
        suffix = {"info": "_info", "counter": "_total"}.get(family.type, "")
        names.add(family.name + suffix)
    assert first_column("Metrics") == names


def test_every_condition_reason_is_documented() -> None:
    assert first_column("Condition reasons") == set(codes.REASONS)


def test_every_error_code_is_documented() -> None:
    assert first_column("Error codes") == set(codes.ERROR_CODES)


def test_every_docker_error_has_a_documented_code() -> None:
    classes = [errors.DockerError, *errors.DockerError.__subclasses__()]
    assert {cls.code for cls in classes} <= set(codes.ERROR_CODES)
