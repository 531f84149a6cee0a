"""Conditions behave as metav1.Condition users expect (kubectl wait, dashboards, alerts)."""

import datetime

from nodekeeper.api.conditions import Condition, set_condition

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)


def test_a_new_condition_gets_the_current_time() -> None:
    result = set_condition(
        [], type="Ready", status="True", reason="Running", message="", observed_generation=3, now=T0
    )
    assert result == [
        Condition(
            type="Ready",
            status="True",
            reason="Running",
            message="",
            lastTransitionTime="2026-01-01T12:00:00Z",
            observedGeneration=3,
        )
    ]


def test_the_transition_time_moves_only_when_the_status_changes() -> None:
    first = set_condition(
        [],
        type="Ready",
        status="False",
        reason="Starting",
        message="a",
        observed_generation=1,
        now=T0,
    )
    same_status = set_condition(
        first,
        type="Ready",
        status="False",
        reason="Pulling",
        message="b",
        observed_generation=2,
        now=T1,
    )
    flipped = set_condition(
        same_status,
        type="Ready",
        status="True",
        reason="Running",
        message="",
        observed_generation=2,
        now=T1,
    )
    assert same_status[0].lastTransitionTime == "2026-01-01T12:00:00Z"
    assert (same_status[0].reason, same_status[0].message) == ("Pulling", "b")
    assert same_status[0].observedGeneration == 2
    assert flipped[0].lastTransitionTime == "2026-01-01T12:05:00Z"


def test_other_conditions_are_kept_in_their_order() -> None:
    conditions = set_condition(
        [],
        type="Admitted",
        status="True",
        reason="Admitted",
        message="",
        observed_generation=1,
        now=T0,
    )
    conditions = set_condition(
        conditions,
        type="Ready",
        status="False",
        reason="X",
        message="",
        observed_generation=1,
        now=T0,
    )
    conditions = set_condition(
        conditions,
        type="Admitted",
        status="False",
        reason="Y",
        message="",
        observed_generation=1,
        now=T1,
    )
    assert [c.type for c in conditions] == ["Admitted", "Ready"]
    assert conditions[0].status == "False"
