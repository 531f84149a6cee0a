"""New Workloads are refused under sustained pressure or when the node is full, with the figures."""

from collections.abc import Iterable
from pathlib import Path

import pytest

from nodekeeper.pressure.admission import AdmissionGate, AdmissionLimits
from nodekeeper.pressure.psi import PsiLine, PsiSample
from nodekeeper.pressure.thresholds import ConditionState, PressureTracker, Threshold
from nodekeeper.pressure.totals import NodeTotals, TotalsReader

CALM = NodeTotals(0.40, 0.20, 0.30, Path("/var/lib/docker"))


class FixedTotals:
    def __init__(self, totals: NodeTotals) -> None:
        self.totals = totals

    def read(self) -> NodeTotals:
        return self.totals


class FixedConditions:
    def __init__(self, states: Iterable[ConditionState]) -> None:
        self._states = list(states)

    def states(self) -> Iterable[ConditionState]:
        return self._states


def under_cpu_pressure() -> PressureTracker:
    tracker = PressureTracker({"cpu": Threshold(0.10, 0.05, sustain_seconds=10)})
    for now in (0, 1, 11):
        tracker.update("cpu", PsiSample(PsiLine(0.42, 0.3, 0.1, 9.0), None), now)
    return tracker


def test_a_calm_node_admits() -> None:
    tracker = PressureTracker()
    assert AdmissionGate(tracker, FixedTotals(CALM)).check() is None


def test_sustained_pressure_refuses_with_the_figures() -> None:
    refusal = AdmissionGate(under_cpu_pressure(), FixedTotals(CALM)).check()

    assert refusal is not None
    assert refusal.code == "NodeUnderPressure"
    assert "NodekeeperCPUPressure: cpu some avg10 42.0% >= 10.0% for 10 s" in refusal.message
    assert "assign it to another node" in refusal.message


def test_unknown_pressure_does_not_refuse() -> None:
    tracker = PressureTracker()
    tracker.update("memory", None, now=0)
    assert tracker.state("memory").status == "Unknown"
    assert AdmissionGate(tracker, FixedTotals(CALM)).check() is None


@pytest.mark.parametrize(
    ("totals", "figure"),
    [
        (NodeTotals(0.91, 0.2, 0.3, Path("/var/lib/docker")), "memory is 91.0% used (limit 80.0%)"),
        (NodeTotals(0.4, 0.85, 0.3, Path("/var/lib/docker")), "CPU is 85.0% used (limit 80.0%)"),
        (
            NodeTotals(0.4, 0.2, 0.97, Path("/var/lib/docker")),
            "disk /var/lib/docker is 97.0% used (limit 80.0%)",
        ),
    ],
)
def test_a_full_node_refuses_with_what_is_full(totals: NodeTotals, figure: str) -> None:
    refusal = AdmissionGate(PressureTracker(), FixedTotals(totals)).check()

    assert refusal is not None
    assert refusal.code == "InsufficientResources"
    assert figure in refusal.message
    assert "free resources on the node" in refusal.message


def test_pressure_is_named_before_fullness() -> None:
    full = NodeTotals(0.95, 0.95, 0.95, Path("/var/lib/docker"))
    refusal = AdmissionGate(under_cpu_pressure(), FixedTotals(full)).check()
    assert refusal is not None
    assert refusal.code == "NodeUnderPressure"


def test_limits_are_settings() -> None:
    totals = NodeTotals(0.91, 0.2, 0.3, Path("/var/lib/docker"))
    gate = AdmissionGate(PressureTracker(), FixedTotals(totals), AdmissionLimits(0.95, 0.9, 0.9))
    assert gate.check() is None
    with pytest.raises(ValueError, match="memory_used_ratio"):
        AdmissionLimits(memory_used_ratio=1.5)


def test_unreadable_figures_do_not_refuse() -> None:
    gate = AdmissionGate(
        FixedConditions([]), FixedTotals(NodeTotals(None, None, None, Path("/nowhere")))
    )
    assert gate.check() is None


def test_totals_come_from_the_injected_callables() -> None:
    seen: list[Path] = []

    def disk(path: Path) -> float:
        seen.append(path)
        return 0.5

    totals = TotalsReader(
        disk_path=Path("/srv/docker"), memory=lambda: 0.25, cpu=lambda: 0.75, disk=disk
    ).read()

    assert totals == NodeTotals(0.25, 0.75, 0.5, Path("/srv/docker"))
    assert seen == [Path("/srv/docker")]


def test_a_missing_docker_root_is_unknown_disk(tmp_path: Path) -> None:
    totals = TotalsReader(disk_path=tmp_path / "absent").read()
    assert totals.disk_used_ratio is None
    assert totals.memory_used_ratio is not None
    assert 0.0 < totals.memory_used_ratio < 1.0
