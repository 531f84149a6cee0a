"""`nodekeeper pressure` shows what the agent sees: JSON for tools, text for people."""

import json
from pathlib import Path

from nodekeeper.pressure.cgroups import CgroupReader
from nodekeeper.pressure.psi import PsiReader
from nodekeeper.pressure.report import build_report, render_text
from nodekeeper.pressure.thresholds import PressureTracker
from nodekeeper.pressure.totals import NodeTotals
from tests.unit.pressure.conftest import FIXTURES


class FixedTotals:
    def read(self) -> NodeTotals:
        return NodeTotals(0.5, 0.25, 0.125, Path("/var/lib/docker"))


def hybrid_report() -> dict[str, object]:
    psi = PsiReader(FIXTURES / "proc" / "pressure")
    tracker = PressureTracker()
    tracker.evaluate(psi, now=0)
    cgroups = CgroupReader(root=FIXTURES / "cgroup-hybrid", proc=FIXTURES / "proc")
    return dict(build_report(psi, cgroups, FixedTotals(), tracker))


def test_the_report_is_json_with_psi_cgroups_totals_and_conditions() -> None:
    report = json.loads(json.dumps(hybrid_report()))

    assert report["psi"]["cpu"]["some"]["avg10"] == 0.42
    assert report["cgroups"]["layout"] == "hybrid"
    assert report["cgroups"]["node"]["memory_limit_bytes"] is None
    assert report["cgroups"]["node"]["unknown"] == ["oom_events"]
    assert report["cgroups"]["node"]["psi"]["io"]["full"]["avg10"] == 0.005
    assert report["totals"]["disk_path"] == "/var/lib/docker"
    assert report["conditions"][0] == {
        "type": "NodekeeperCPUPressure",
        "status": "False",
        "reason": "NoCPUPressure",
        "message": "cpu some avg10 42.0% >= 10.0%, not yet for 10 s",
    }


def test_the_text_shows_the_figures() -> None:
    psi = PsiReader(FIXTURES / "proc" / "pressure")
    cgroups = CgroupReader(root=FIXTURES / "cgroup-hybrid", proc=FIXTURES / "proc")
    tracker = PressureTracker()
    tracker.evaluate(psi, now=0)

    text = render_text(build_report(psi, cgroups, FixedTotals(), tracker))

    assert "  cpu             42.0%  12.5%    3.2%         0.0%" in text
    assert "cgroups: hybrid at " in text
    assert "node memory 1.5 GiB used, limit none; OOM kills 5; CPU quota none" in text
    assert "totals: memory 50.0% used, CPU 25.0%, disk /var/lib/docker 12.5%" in text
    assert "NodekeeperCPUPressure      False   NoCPUPressure" in text


def test_a_kernel_without_psi_says_so() -> None:
    psi = PsiReader(FIXTURES / "proc-without-psi" / "pressure")
    cgroups = CgroupReader(root=FIXTURES / "cgroup-v1", proc=FIXTURES / "proc-without-psi")

    report = build_report(psi, cgroups)
    text = render_text(report)

    assert report["psi"] == {"cpu": None, "memory": None, "io": None}
    assert report["totals"] is None
    assert report["conditions"] == []
    assert "  memory     unavailable (kernel without PSI, or psi=0)" in text
