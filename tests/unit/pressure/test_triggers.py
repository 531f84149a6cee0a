"""Trigger set-up errors are this module's own; the live trigger is in tests/integration."""

from pathlib import Path

import pytest

from nodekeeper.pressure.triggers import TriggerUnavailable, open_trigger, round_window


@pytest.mark.parametrize(
    ("requested", "used"),
    [(500_000, 2_000_000), (1_000_000, 2_000_000), (2_000_000, 2_000_000), (2_000_001, 4_000_000)],
)
def test_windows_round_up_to_the_next_two_seconds(requested: int, used: int) -> None:
    assert round_window(requested) == used


async def test_a_missing_pressure_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(TriggerUnavailable, match="cannot open"):
        open_trigger(tmp_path / "cpu.pressure", stall_us=500_000, window_us=2_000_000)


async def test_a_file_that_cannot_signal_is_unavailable_not_an_oserror(tmp_path: Path) -> None:
    plain = tmp_path / "cpu.pressure"
    plain.write_text("")
    with pytest.raises(TriggerUnavailable, match="cannot watch") as caught:
        open_trigger(plain, stall_us=500_000, window_us=2_000_000)
    assert isinstance(caught.value.__cause__, OSError)


async def test_a_stall_longer_than_the_window_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at most the window"):
        open_trigger(tmp_path / "cpu", stall_us=3_000_000, window_us=2_000_000)
