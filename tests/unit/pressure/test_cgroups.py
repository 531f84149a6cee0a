"""cgroup figures on v1, v2 and hybrid hosts: limits, OOM kills, throttling, PSI, unknowns."""

import logging
import shutil
from pathlib import Path

import pytest

from nodekeeper.agent.selfprotect import SelfProtection
from nodekeeper.pressure.cgroups import Cgroup, CgroupReader, detect_hierarchy
from tests.unit.pressure.conftest import CONTAINER_ID, FIXTURES, UNLIMITED_CONTAINER_ID, MiB


def reader(layout: str, proc: str = "proc") -> CgroupReader:
    return CgroupReader(root=FIXTURES / f"cgroup-{layout}", proc=FIXTURES / proc)


@pytest.mark.parametrize("layout", ["v1", "v2", "hybrid"])
def test_the_layout_is_detected(layout: str) -> None:
    assert detect_hierarchy(FIXTURES / f"cgroup-{layout}").layout == layout


def test_a_host_without_cgroups_has_layout_none(tmp_path: Path) -> None:
    assert detect_hierarchy(tmp_path).layout == "none"


def test_hybrid_reads_pressure_from_the_unified_tree() -> None:
    hierarchy = detect_hierarchy(FIXTURES / "cgroup-hybrid")
    assert hierarchy.unified == FIXTURES / "cgroup-hybrid" / "unified"
    assert {"memory", "cpu"} <= set(hierarchy.controllers)


class TestV1:
    def test_the_node_reports_unlimited_memory_and_no_quota(self) -> None:
        cgroups = reader("v1")
        stats = cgroups.read(cgroups.node())

        assert stats.memory_current_bytes == 1653579776
        assert stats.memory_limit_bytes is None
        assert stats.memory_limited is False  # "unlimited", not unknown
        assert stats.cpu_quota_cores is None
        assert "cpu_quota_cores" not in stats.unknown
        assert stats.oom_kill_events == 0
        assert stats.memory_working_set_bytes == 1653579776 - 400000000
        assert stats.psi == {}

    def test_a_container_has_its_limit_quota_throttling_and_oom_kills(self) -> None:
        cgroups = reader("v1")
        container = cgroups.container(CONTAINER_ID)
        assert container is not None
        stats = cgroups.read(container)

        assert stats.memory_limit_bytes == 64 * MiB
        assert stats.memory_current_bytes == 48 * MiB
        assert stats.memory_working_set_bytes == 40 * MiB
        assert stats.oom_kill_events == 2
        assert stats.cpu_quota_cores == 0.5
        assert (stats.throttled_periods, stats.throttled_seconds) == (12, 3.5)

    def test_v1_counts_oom_kills_but_not_limit_hits(self) -> None:
        cgroups = reader("v1")
        stats = cgroups.read(cgroups.node())
        assert stats.oom_events is None
        assert stats.unknown == {"oom_events"}


class TestV2:
    def test_a_systemd_scope_container_has_its_limit_quota_throttling_and_ooms(self) -> None:
        cgroups = reader("v2")
        container = cgroups.container(CONTAINER_ID)
        assert container is not None
        assert container.memory is not None
        assert container.memory.name == f"docker-{CONTAINER_ID}.scope"
        stats = cgroups.read(container)

        assert stats.memory_limit_bytes == 64 * MiB
        assert stats.memory_working_set_bytes == 44 * MiB
        assert (stats.oom_events, stats.oom_kill_events) == (3, 1)
        assert stats.cpu_quota_cores == 0.5
        assert (stats.throttled_periods, stats.throttled_seconds) == (12, 3.5)
        assert set(stats.psi) == {"cpu", "memory", "io"}
        assert stats.psi["memory"].some.avg10 == 0.05
        assert stats.unknown == frozenset()

    def test_max_means_unlimited(self) -> None:
        cgroups = reader("v2")
        container = cgroups.container(UNLIMITED_CONTAINER_ID)
        assert container is not None
        stats = cgroups.read(container)

        assert stats.memory_limit_bytes is None
        assert stats.memory_limited is False
        assert stats.cpu_quota_cores is None
        assert "cpu_quota_cores" not in stats.unknown

    def test_the_root_lacks_limits_by_design_and_says_so_quietly(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        cgroups = reader("v2")
        stats = cgroups.read(cgroups.node())

        assert stats.memory_limited is None
        assert {"memory_current_bytes", "memory_limit_bytes", "cpu_quota_cores"} <= stats.unknown
        assert stats.psi["cpu"].some.avg10 == 0.42
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


class TestHybrid:
    def test_the_node_takes_memory_and_cpu_from_v1_and_psi_from_unified(self) -> None:
        cgroups = reader("hybrid")
        stats = cgroups.read(cgroups.node())

        assert stats.memory_current_bytes == 1620324352
        assert stats.memory_limit_bytes is None
        assert stats.oom_kill_events == 5
        assert (stats.throttled_periods, stats.throttled_seconds) == (0, 0.0)
        assert stats.psi["cpu"].some.avg10 == 0.42
        assert stats.psi["io"].full is not None
        assert stats.unknown == {"oom_events"}

    def test_a_cgroupfs_container_has_psi_from_the_unified_tree(self) -> None:
        cgroups = reader("hybrid")
        container = cgroups.container(CONTAINER_ID)
        assert container is not None
        stats = cgroups.read(container)

        assert stats.memory_limit_bytes == 64 * MiB
        assert stats.cpu_quota_cores is None
        assert stats.psi["cpu"].some.avg10 == 0.05


@pytest.mark.parametrize("layout", ["v1", "v2", "hybrid"])
def test_an_unknown_container_is_not_found(layout: str) -> None:
    assert reader(layout).container("f" * 64) is None


class TestAgent:
    def test_v1_agent_limit_from_its_own_memory_cgroup(self) -> None:
        cgroups = reader("v1", proc="proc-without-psi")
        agent = cgroups.agent()
        stats = cgroups.read(agent)

        assert agent.name == "/agent"
        assert stats.memory_limit_bytes == 256 * MiB
        assert stats.cpu_quota_cores == 1.0

    def test_v2_agent_limit_from_its_cgroup(self) -> None:
        cgroups = reader("v2", proc="proc-v2")
        stats = cgroups.read(cgroups.agent())

        assert stats.memory_limit_bytes == 256 * MiB
        assert stats.cpu_quota_cores == 2.0

    def test_hybrid_agent_is_unlimited_and_sees_node_psi(self) -> None:
        cgroups = reader("hybrid")
        agent = cgroups.agent()
        stats = cgroups.read(agent)

        assert agent.memory == FIXTURES / "cgroup-hybrid" / "memory" / "agent"
        assert stats.memory_limited is False
        assert stats.memory_current_bytes == 96 * MiB
        assert set(stats.psi) == {"cpu", "memory", "io"}

    def test_unreadable_proc_self_cgroup_falls_back_to_the_root(self, tmp_path: Path) -> None:
        cgroups = CgroupReader(root=FIXTURES / "cgroup-v1", proc=tmp_path)
        assert cgroups.agent().is_root


class TestAgentInACgroupNamespace:
    """A v2 pod has a private cgroup namespace: its /proc/self/cgroup says ``0::/``."""

    OWN = FIXTURES / "cgroup-v2-own"  # the pod's own view: its cgroup is the root

    def cgroups(self, proc: Path, own_root: Path = OWN) -> CgroupReader:
        return CgroupReader(root=FIXTURES / "cgroup-v2", proc=proc, own_root=own_root)

    def test_a_private_namespace_reads_the_agents_own_view(self) -> None:
        cgroups = self.cgroups(FIXTURES / "proc-v2-cgroupns")
        agent = cgroups.agent()
        stats = cgroups.read(agent)

        assert cgroups.cgroup_namespace() == "private"
        assert (agent.memory, agent.is_root) == (self.OWN, False)
        assert stats.memory_limit_bytes == 128 * MiB  # not the host root's "no limit"
        assert stats.memory_working_set_bytes == 125829120 - 20 * MiB
        assert stats.cpu_quota_cores == 0.5
        assert stats.psi["memory"].some.avg10 == 0.02
        memory = SelfProtection(cgroups, fallback_limit_bytes=1024 * MiB).read()
        assert (memory.limit_bytes, memory.limit_source) == (128 * MiB, "cgroup")

    def test_the_hosts_namespace_at_the_root_is_the_hosts_root(self) -> None:
        cgroups = self.cgroups(FIXTURES / "proc-v2-hostns")

        assert cgroups.cgroup_namespace() == "host"
        root = FIXTURES / "cgroup-v2"
        assert cgroups.agent() == Cgroup("/", "agent", 2, root, root, root, is_root=True)

    def test_unreadable_namespace_links_with_the_root_path_mean_a_namespace(
        self, tmp_path: Path
    ) -> None:
        # A pod may not read the host init's ns link (EACCES without CAP_SYS_PTRACE); no agent
        # runs in the host's root cgroup, so 0::/ on a v2 host is a namespace's root.
        (tmp_path / "self").mkdir()
        (tmp_path / "self" / "cgroup").write_text("0::/\n")
        cgroups = self.cgroups(tmp_path)

        assert cgroups.cgroup_namespace() == "unknown"
        assert cgroups.read(cgroups.agent()).memory_limit_bytes == 128 * MiB

    def test_unreadable_links_with_a_full_path_read_the_hosts_tree(self) -> None:
        cgroups = self.cgroups(FIXTURES / "proc-v2")  # 0::/kubepods/pod-agent/agent

        assert cgroups.agent().memory == FIXTURES / "cgroup-v2" / "kubepods/pod-agent/agent"

    def test_without_an_own_view_the_agent_falls_back_and_says_so_once(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        cgroups = self.cgroups(FIXTURES / "proc-v2-cgroupns", own_root=tmp_path)

        agents = [cgroups.agent(), cgroups.agent()]

        assert all(agent.is_root for agent in agents)
        assert cgroups.read(agents[0]).memory_limited is None  # unknown, not "unlimited"
        assert [r.__dict__["reason"] for r in caplog.records] == [
            f"no cgroup v2 tree at {tmp_path}"
        ]

    def test_v1_keeps_reading_the_hosts_tree(self, tmp_path: Path) -> None:
        proc = tmp_path / "proc"
        shutil.copytree(FIXTURES / "proc-v2-cgroupns", proc, symlinks=True)
        shutil.copy(FIXTURES / "proc" / "self" / "cgroup", proc / "self" / "cgroup")
        cgroups = CgroupReader(root=FIXTURES / "cgroup-v1", proc=proc, own_root=self.OWN)

        agent = cgroups.agent()

        assert agent.name == "/agent"
        assert agent.memory == FIXTURES / "cgroup-v1" / "memory" / "agent"


class TestMissingFiles:
    def test_a_missing_file_is_unknown_and_warned_once(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        cgroups = reader("v2")
        container = cgroups.container(UNLIMITED_CONTAINER_ID)
        assert container is not None

        with caplog.at_level(logging.INFO, logger="nodekeeper.pressure"):
            first = cgroups.read(container)
            second = cgroups.read(container)

        for stats in (first, second):
            assert (stats.oom_events, stats.oom_kill_events) == (None, None)
            assert {"oom_events", "oom_kill_events"} <= stats.unknown
            assert stats.memory_current_bytes == 1 * MiB
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        # memory.events is missing, and so are the container's pressure files.
        assert len(warnings) == len(set(warnings))
        assert any("memory.events" in message for message in warnings)

    def test_a_container_that_exited_reads_as_unknown_without_warnings(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        root = tmp_path / "cgroup"
        shutil.copytree(FIXTURES / "cgroup-v1", root)
        cgroups = CgroupReader(root=root, proc=FIXTURES / "proc")
        container = cgroups.container(CONTAINER_ID)
        assert container is not None
        shutil.rmtree(root / "memory" / "docker" / CONTAINER_ID)
        shutil.rmtree(root / "cpu" / "docker" / CONTAINER_ID)

        stats = cgroups.read(container)

        assert stats.memory_current_bytes is None
        assert stats.memory_limited is None
        assert stats.throttled_periods is None
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


class TestMalformedFiles:
    """Garbage where figures belong is unknown, said once per file and counted; never raised."""

    def test_each_malformed_file_makes_its_own_figures_unknown(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        cgroups = reader("v2-malformed")
        container = cgroups.container(CONTAINER_ID)
        assert container is not None

        with caplog.at_level(logging.INFO, logger="nodekeeper.pressure"):
            first = cgroups.read(container)
            second = cgroups.read(container)

        assert first == second
        assert first.unknown == {
            "memory_current_bytes",  # garbage text
            "memory_limit_bytes",  # truncated to nothing
            "oom_events",  # truncated line
            "oom_kill_events",
            "memory_working_set_bytes",  # a word for a number
            "cpu_quota_cores",  # a zero period
        }
        assert first.memory_limited is None  # unknown, not "unlimited"
        assert (first.throttled_periods, first.throttled_seconds) == (12, 3.5)  # cpu.stat is fine
        assert set(first.psi) == {"memory"}  # cpu.pressure truncated, io.pressure binary
        reasons = {
            r.__dict__["what"].removeprefix("cgroup file "): r.__dict__["reason"]
            for r in caplog.records
        }
        assert [r.levelno for r in caplog.records] == [logging.WARNING] * 7  # once per file
        assert reasons["memory.current"] == "expected an integer, got 'lots of memory'"
        assert reasons["memory.max"] == "expected an integer, got ''"
        assert reasons["memory.stat"] == "expected an integer, got 'NaN'"
        assert reasons["cpu.max"] == "period 0 is not positive"
        assert "lacks avg300=" in reasons["cpu.pressure"]
        assert "can't decode" in reasons["io.pressure"]
        assert cgroups.malformed == {"cgroup": 14}  # every read counted

    def test_a_mended_file_is_read_again_and_said_once(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        root = tmp_path / "cgroup"
        shutil.copytree(FIXTURES / "cgroup-v1", root)
        (root / "memory" / "memory.limit_in_bytes").write_text("lots\n")
        cgroups = CgroupReader(root=root, proc=FIXTURES / "proc")

        with caplog.at_level(logging.INFO, logger="nodekeeper.pressure"):
            assert cgroups.read(cgroups.node()).memory_limited is None
            (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
            assert cgroups.read(cgroups.node()).memory_limited is False

        assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
        assert (
            caplog.records[0]
            .getMessage()
            .startswith("cgroup file memory.limit_in_bytes malformed: ")
        )
        assert cgroups.malformed == {"cgroup": 1}

    def test_a_malformed_own_cgroup_line_falls_back_to_the_root(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        cgroups = reader("v2-malformed", proc="proc-malformed")

        agent = cgroups.agent()

        assert agent.is_root
        assert "'not a cgroup line' is not hierarchy:controllers:path" in caplog.text
        assert cgroups.malformed == {"cgroup": 1}
