"""`nodekeeper pressure` shows what the agent sees: JSON for tools, text for people."""

import json
from pathlib import Path

from nodekeeper.pressure.cgroups import CgroupReader
from nodekeeper.pressure.psi import PsiReader, Resource
from nodekeeper.pressure.report import (
    PressureReport,
    build_report,
    render_text,
)
from nodekeeper.pressure.thresholds import PressureTracker, Threshold
from nodekeeper.pressure.totals import NodeTotals
from nodekeeper.pressure.usage import WorkloadKey
from tests.unit.pressure.conftest import CONTAINER_ID, FIXTURES, MiB


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
    assert report["conditions_basis"] == "sustained"
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
    assert report["conditions_basis"] is None
    assert report["workloads"] is None
    assert "  memory     unavailable (kernel without PSI, or psi=0)" in text


class TestInstantConditions:
    """Without an agent's history, the thresholds judge the figures just read."""

    def report(self, threshold: Threshold) -> PressureReport:
        psi = PsiReader(FIXTURES / "proc" / "pressure")
        cgroups = CgroupReader(root=FIXTURES / "cgroup-hybrid", proc=FIXTURES / "proc")
        thresholds: dict[Resource, Threshold] = {r: threshold for r in ("cpu", "memory", "io")}
        return build_report(psi, cgroups, thresholds=thresholds)

    def test_each_condition_says_what_it_would_be_at_these_figures(self) -> None:
        report = self.report(Threshold(enter_ratio=0.10, exit_ratio=0.05, sustain_seconds=30))

        assert report["conditions_basis"] == "instantaneous"
        assert [
            (c["type"], c["status"], c["reason"], c["message"]) for c in report["conditions"]
        ] == [
            (
                "NodekeeperCPUPressure",
                "True",
                "CPUPressure",
                "cpu some avg10 42.0% >= 10.0%: would be True at these figures, "
                "once they last 30 s",
            ),
            (
                "NodekeeperMemoryPressure",
                "False",
                "NoMemoryPressure",
                "memory some avg10 0.1% < 5.0%: would be False at these figures",
            ),
            (
                "NodekeeperIOPressure",
                "False",
                "NoIOPressure",
                "io some avg10 1.0% < 5.0%: would be False at these figures",
            ),
        ]

    def test_between_exit_and_enter_the_message_names_the_hysteresis(self) -> None:
        report = self.report(Threshold(enter_ratio=0.5, exit_ratio=0.4, sustain_seconds=10))

        cpu = report["conditions"][0]
        assert cpu["status"] == "False"
        assert cpu["message"] == (
            "cpu some avg10 42.0% < 50.0%: would be False at these figures; one already True "
            "stays so until below 40.0% for 10 s"
        )

    def test_the_text_says_the_evaluation_is_instantaneous(self) -> None:
        psi = PsiReader(FIXTURES / "proc-without-psi" / "pressure")
        cgroups = CgroupReader(root=FIXTURES / "cgroup-v1", proc=FIXTURES / "proc-without-psi")

        text = render_text(build_report(psi, cgroups, thresholds={}))

        assert "conditions (instantaneous: these figures judged alone, without the sustain " in text
        assert "NodekeeperIOPressure       Unknown PSIUnavailable     no PSI figures" in text


class TestWorkloads:
    def test_each_workload_container_shows_its_cgroup_figures(self) -> None:
        psi = PsiReader(FIXTURES / "proc" / "pressure")
        cgroups = CgroupReader(root=FIXTURES / "cgroup-v2", proc=FIXTURES / "proc")
        workloads = [
            (WorkloadKey("team-a", "web"), CONTAINER_ID),
            (WorkloadKey("team-a", "gone"), "e" * 64),
        ]

        report = build_report(psi, cgroups, workloads=workloads)
        text = render_text(report)

        assert report["workloads"] is not None
        gone, web = report["workloads"]["containers"]
        assert (gone["name"], gone["cgroup"]) == ("gone", None)
        assert web["cgroup"]["memory_limit_bytes"] == 64 * MiB
        assert web["cgroup"]["psi"]["memory"]["some"]["avg10"] == 0.05
        assert "workloads: 2 running container(s)" in text
        assert "  team-a/gone eeeeeeeeeeee: no cgroup (exited?)" in text
        assert (
            "  team-a/web 0123456789ab: memory 44.0 MiB working set, limit 64.0 MiB; OOM kills 1; "
            "CPU quota 0.5 cores; throttled 12 periods; PSI some avg10 cpu 5.0%, memory 5.0%, "
            "io 5.0%"
        ) in text

    def test_workloads_left_out_say_why(self) -> None:
        psi = PsiReader(FIXTURES / "proc" / "pressure")
        cgroups = CgroupReader(root=FIXTURES / "cgroup-v2", proc=FIXTURES / "proc")

        report = build_report(psi, cgroups, workloads="left out: Docker cannot be reached")

        workloads = report["workloads"]
        assert workloads is not None
        assert (workloads["skipped"], workloads["containers"]) == (
            "left out: Docker cannot be reached",
            [],
        )
        assert "workloads: left out: Docker cannot be reached" in render_text(report)
