"""Malformed PSI and cgroup files are counted where a user sees them: in the metrics."""

from prometheus_client import CollectorRegistry

from nodekeeper.agent.metrics import SelfMemoryCollector
from nodekeeper.agent.selfprotect import SelfProtection
from nodekeeper.pressure.cgroups import CgroupReader
from nodekeeper.pressure.metrics import PressureCollector
from nodekeeper.pressure.psi import PsiReader
from nodekeeper.pressure.thresholds import PressureTracker
from tests.unit.pressure.conftest import FIXTURES


def test_malformed_files_are_counted_per_source_in_the_metrics() -> None:
    psi = PsiReader(FIXTURES / "proc-malformed" / "pressure")
    cgroups = CgroupReader(root=FIXTURES / "cgroup-v2-malformed", proc=FIXTURES / "proc-malformed")
    registry = CollectorRegistry()
    # First: get_sample_value stops at the first family that has the sample.
    registry.register(SelfMemoryCollector(SelfProtection(cgroups).read))
    registry.register(
        PressureCollector(
            psi=psi.read_all,
            conditions=PressureTracker().states,
            read_errors=lambda: {**psi.malformed, **cgroups.malformed},
        )
    )
    errors = "nodekeeper_pressure_read_errors_total"
    # A scrape reads PSI (and the agent's own cgroup) itself: each malformed read counts.
    first = registry.get_sample_value(errors, {"source": "psi"})
    assert first is not None
    assert first > 0
    assert (registry.get_sample_value(errors, {"source": "psi"}) or 0) > first
    cgroups.read(cgroups.node())
    assert (registry.get_sample_value(errors, {"source": "cgroup"}) or 0) > 0


def test_a_malformed_file_is_not_blamed_on_the_kernel_alone() -> None:
    tracker = PressureTracker()
    transitions = tracker.evaluate(PsiReader(FIXTURES / "proc-malformed" / "pressure"), 0.0)

    io = next(t.current for t in transitions if t.type == "NodekeeperIOPressure")
    assert (io.status, io.reason) == ("Unknown", "PSIUnavailable")
    assert "could not be parsed" in io.message
    assert "the agent's log names it" in io.message
