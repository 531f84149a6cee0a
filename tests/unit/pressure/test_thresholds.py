"""Conditions follow sustained pressure only: sustain window, hysteresis, Unknown without PSI."""

import re

import pytest

from nodekeeper.api.codes import NODE_REASONS
from nodekeeper.api.conditions import REASON_PATTERN
from nodekeeper.pressure.psi import PsiLine, PsiReader, PsiSample, Resource
from nodekeeper.pressure.thresholds import (
    CONDITION_TYPES,
    PressureTracker,
    Threshold,
    Transition,
)
from tests.unit.pressure.conftest import FIXTURES

CPU = Threshold(enter_ratio=0.10, exit_ratio=0.05, sustain_seconds=10)


def psi(some_avg10: float, full_avg10: float | None = 0.0) -> PsiSample:
    full = None if full_avg10 is None else PsiLine(full_avg10, 0.0, 0.0, 0.0)
    return PsiSample(some=PsiLine(some_avg10, 0.0, 0.0, 0.0), full=full)


def feed(
    tracker: PressureTracker, resource: Resource, samples: list[tuple[float, float | None]]
) -> list[tuple[float, str, str]]:
    """(time, status, reason) of every transition the samples cause."""
    seen: list[tuple[float, str, str]] = []
    for now, value in samples:
        transition = tracker.update(resource, None if value is None else psi(value), now)
        if transition is not None:
            seen.append((now, transition.status, transition.reason))
    return seen


def test_conditions_start_unknown_until_sampled() -> None:
    states = PressureTracker().states()
    assert [(s.type, s.status, s.reason) for s in states] == [
        ("NodekeeperCPUPressure", "Unknown", "NotYetSampled"),
        ("NodekeeperMemoryPressure", "Unknown", "NotYetSampled"),
        ("NodekeeperIOPressure", "Unknown", "NotYetSampled"),
    ]


def test_the_first_sample_reports_false_even_when_high() -> None:
    tracker = PressureTracker({"cpu": CPU})
    transition = tracker.update("cpu", psi(0.42), now=0.0)

    assert transition is not None
    assert (transition.type, transition.status, transition.reason) == (
        "NodekeeperCPUPressure",
        "False",
        "NoCPUPressure",
    )
    assert transition.message == "cpu some avg10 42.0% >= 10.0%, not yet for 10 s"


def test_pressure_becomes_true_only_after_the_sustain_window() -> None:
    tracker = PressureTracker({"cpu": CPU})
    seen = feed(tracker, "cpu", [(0, 0.01), (5, 0.42), (10, 0.42), (14.9, 0.42), (15, 0.42)])

    assert seen == [(0, "False", "NoCPUPressure"), (15, "True", "CPUPressure")]
    state = tracker.state("cpu")
    assert state.message == "cpu some avg10 42.0% >= 10.0% for 10 s"
    assert state.since == 15


def test_a_dip_below_the_enter_ratio_restarts_the_sustain_window() -> None:
    tracker = PressureTracker({"cpu": CPU})
    seen = feed(tracker, "cpu", [(0, 0.0), (1, 0.5), (9, 0.09), (10, 0.5), (19, 0.5), (20, 0.5)])

    assert seen == [(0, "False", "NoCPUPressure"), (20, "True", "CPUPressure")]


def test_hysteresis_keeps_pressure_true_between_exit_and_enter() -> None:
    tracker = PressureTracker({"cpu": CPU})
    feed(tracker, "cpu", [(0, 0.0), (1, 0.5), (11, 0.5)])
    assert tracker.state("cpu").status == "True"

    # 7 % is below enter (10 %) but not below exit (5 %): still pressure, however long.
    assert feed(tracker, "cpu", [(20, 0.07), (40, 0.07), (60, 0.07)]) == []
    assert tracker.state("cpu").status == "True"


def test_pressure_ends_only_after_staying_below_exit_for_the_window() -> None:
    tracker = PressureTracker({"cpu": CPU})
    feed(tracker, "cpu", [(0, 0.0), (1, 0.5), (11, 0.5)])

    seen = feed(tracker, "cpu", [(12, 0.01), (18, 0.06), (19, 0.01), (28, 0.01), (29, 0.02)])

    assert seen == [(29, "False", "NoCPUPressure")]
    assert tracker.state("cpu").message == "cpu some avg10 2.0% < 5.0% for 10 s"


def test_memory_pressure_transitions_on_fixture_samples() -> None:
    """Real memory pressure cannot be raised on the test hosts; the rules are the same."""
    tracker = PressureTracker({"memory": Threshold(0.20, 0.10, sustain_seconds=30)})
    seen = feed(tracker, "memory", [(0, 0.0), (10, 0.25), (25, 0.30), (40, 0.35), (50, 0.05)])
    seen += feed(tracker, "memory", [(70, 0.05), (80, 0.05)])

    assert seen == [
        (0, "False", "NoMemoryPressure"),
        (40, "True", "MemoryPressure"),
        (80, "False", "NoMemoryPressure"),
    ]


def test_no_psi_is_unknown_at_once_and_recovers_to_false() -> None:
    tracker = PressureTracker({"io": CPU})
    seen = feed(tracker, "io", [(0, 0.5), (1, 0.5), (11, 0.5), (12, None), (13, None), (14, 0.5)])

    assert seen == [
        (0, "False", "NoIOPressure"),
        (11, "True", "IOPressure"),
        (12, "Unknown", "PSIUnavailable"),
        (14, "False", "NoIOPressure"),
    ]
    # After PSI returns, pressure must be sustained again from scratch.
    assert feed(tracker, "io", [(23, 0.5), (24, 0.5)]) == [(24, "True", "IOPressure")]


def test_unknown_message_says_what_to_do() -> None:
    tracker = PressureTracker()
    transition = tracker.update("memory", None, now=0)
    assert transition is not None
    assert transition.status == "Unknown"
    assert "boot with psi=1" in transition.message


def test_a_full_threshold_without_a_full_line_is_unknown() -> None:
    tracker = PressureTracker({"cpu": Threshold(line="full")})
    transition = tracker.update("cpu", psi(0.5, full_avg10=None), now=0)
    assert transition is not None
    assert (transition.status, transition.reason) == ("Unknown", "PSIUnavailable")


def test_evaluate_reads_every_resource_from_the_source() -> None:
    tracker = PressureTracker()
    transitions = tracker.evaluate(PsiReader(FIXTURES / "proc" / "pressure"), now=0)

    assert [(t.resource, t.status) for t in transitions] == [
        ("cpu", "False"),
        ("memory", "False"),
        ("io", "False"),
    ]
    assert tracker.state("cpu").ratio == 0.42


def test_next_due_is_when_a_pending_transition_could_complete() -> None:
    tracker = PressureTracker({"cpu": CPU})
    assert tracker.next_due(0) is None
    tracker.update("cpu", psi(0.0), now=0)
    assert tracker.next_due(0) is None
    tracker.update("cpu", psi(0.5), now=3)
    assert tracker.next_due(4) == 13
    assert tracker.next_due(20) == 20


def test_a_transition_exposes_what_the_node_status_patch_needs() -> None:
    tracker = PressureTracker()
    transition = tracker.update("cpu", psi(0.0), now=0)
    assert isinstance(transition, Transition)
    assert transition.previous.status == "Unknown"
    assert transition.current.since == 0


def test_every_reason_is_a_valid_condition_reason() -> None:
    assert set(CONDITION_TYPES.values()) == {
        "NodekeeperMemoryPressure",
        "NodekeeperCPUPressure",
        "NodekeeperIOPressure",
    }
    for reason in NODE_REASONS:
        assert re.fullmatch(REASON_PATTERN, reason), reason


@pytest.mark.parametrize(
    "fields",
    [
        {"enter_ratio": 0.0},
        {"enter_ratio": 1.5},
        {"enter_ratio": 0.1, "exit_ratio": 0.2},
        {"sustain_seconds": -1},
    ],
)
def test_invalid_thresholds_are_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        Threshold(**fields)  # type: ignore[arg-type]
