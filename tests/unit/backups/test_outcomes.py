"""What an exit code, a timeout or an ingested result means for a run."""

import pytest

from nodekeeper.backups import outcomes


@pytest.mark.parametrize(
    ("code", "phase", "reason"),
    [
        (0, "Succeeded", "Succeeded"),
        (3, "PartiallyFailed", "PartiallyFailed"),
        (10, "Failed", "RepositoryNotFound"),
        (11, "Failed", "RepositoryLocked"),
        (12, "Failed", "WrongPassword"),
        (130, "Failed", "Interrupted"),
        (1, "Failed", "Failed"),
        (137, "Failed", "Failed"),
        (-1, "Failed", "Failed"),
    ],
)
def test_exit_codes_map_as_restic_defines_them(code: int, phase: str, reason: str) -> None:
    outcome = outcomes.of_exit_code(code)
    assert (outcome.phase, outcome.reason) == (phase, reason)
    assert outcome.failed == (phase != "Succeeded")


def test_an_unknown_code_is_named_in_the_message() -> None:
    assert "code 42" in outcomes.of_exit_code(42).message


def test_a_timeout_fails_with_its_own_reason() -> None:
    outcome = outcomes.of_timeout(30)
    assert (outcome.phase, outcome.reason) == ("Failed", "Timeout")
    assert "30" in outcome.message


def test_a_result_status_is_both_phase_and_reason() -> None:
    outcome = outcomes.of_result("PartiallyFailed", "2 files unreadable")
    assert (outcome.phase, outcome.reason) == ("PartiallyFailed", "PartiallyFailed")
    assert "2 files unreadable" in outcome.message


def test_every_reason_is_a_valid_condition_reason_and_documented() -> None:
    import re

    from nodekeeper.api.conditions import REASON_PATTERN

    for reason in outcomes.REASONS:
        assert re.fullmatch(REASON_PATTERN, reason)
