"""The agent measures itself against its own limit and sizes its reads, dropping nothing."""

import pytest

from nodekeeper.agent.selfprotect import MemoryLevel, MemoryLevels, ReadBudget, SelfProtection
from nodekeeper.pressure.cgroups import CgroupReader
from tests.unit.pressure.conftest import FIXTURES, MiB


@pytest.mark.parametrize(
    ("ratio", "level"),
    [
        (None, MemoryLevel.NORMAL),
        (0.5, MemoryLevel.NORMAL),
        (0.70, MemoryLevel.WARN),
        (0.85, MemoryLevel.SLOW),
        (0.899, MemoryLevel.SLOW),
        (0.90, MemoryLevel.CRITICAL),
        (1.2, MemoryLevel.CRITICAL),
    ],
)
def test_levels_at_70_85_90_percent(ratio: float | None, level: MemoryLevel) -> None:
    assert MemoryLevels().level(ratio) is level


def test_the_limit_comes_from_the_agents_own_cgroup() -> None:
    cgroups = CgroupReader(root=FIXTURES / "cgroup-v2", proc=FIXTURES / "proc-v2")
    memory = SelfProtection(cgroups, fallback_limit_bytes=1024 * MiB, rss=lambda: 1).read()

    assert (memory.limit_bytes, memory.limit_source) == (256 * MiB, "cgroup")
    assert memory.used_bytes == 241591910  # the working set, not the process RSS
    assert memory.level is MemoryLevel.SLOW


def test_a_malformed_limit_falls_back_to_the_setting_instead_of_raising() -> None:
    cgroups = CgroupReader(root=FIXTURES / "cgroup-v2-malformed", proc=FIXTURES / "proc-v2")
    memory = SelfProtection(cgroups, fallback_limit_bytes=1024 * MiB, rss=lambda: 512 * MiB).read()

    assert (memory.limit_bytes, memory.limit_source) == (1024 * MiB, "setting")
    assert memory.level is MemoryLevel.NORMAL
    assert cgroups.malformed == {"cgroup": 1}


def test_v1_usage_is_the_working_set() -> None:
    cgroups = CgroupReader(root=FIXTURES / "cgroup-v1", proc=FIXTURES / "proc-without-psi")
    memory = SelfProtection(cgroups).read()

    assert memory.used_bytes == 192 * MiB - 2 * MiB
    assert memory.ratio == pytest.approx(190 / 256)
    assert memory.level is MemoryLevel.WARN


def test_an_unlimited_cgroup_falls_back_to_the_setting() -> None:
    cgroups = CgroupReader(root=FIXTURES / "cgroup-hybrid", proc=FIXTURES / "proc")
    memory = SelfProtection(cgroups, fallback_limit_bytes=100 * MiB, rss=lambda: 95 * MiB).read()

    assert (memory.limit_bytes, memory.limit_source) == (100 * MiB, "setting")
    assert memory.level is MemoryLevel.CRITICAL


def test_without_any_limit_the_level_stays_normal() -> None:
    memory = SelfProtection(None, rss=lambda: 10 * MiB).read()
    assert (memory.limit_bytes, memory.limit_source, memory.ratio) == (None, "none", None)
    assert memory.level is MemoryLevel.NORMAL


def test_the_real_process_is_measured_by_default() -> None:
    memory = SelfProtection(None).read()
    assert memory.used_bytes > MiB


class TestReadBudget:
    def test_halves_under_pressure_and_grows_by_a_step_when_calm(self) -> None:
        budget = ReadBudget(minimum=16, maximum=1024, step=64)
        assert budget.size == 1024

        assert [budget.on_pressure() for _ in range(3)] == [512, 256, 128]
        assert [budget.on_calm() for _ in range(2)] == [192, 256]

    def test_stays_within_its_bounds(self) -> None:
        budget = ReadBudget(minimum=16, maximum=100, step=64, initial=20)
        assert [budget.on_pressure() for _ in range(3)] == [16, 16, 16]
        assert [budget.on_calm() for _ in range(3)] == [80, 100, 100]

    def test_follows_memory_levels(self) -> None:
        budget = ReadBudget(minimum=16, maximum=1024, step=64, initial=512)
        assert budget.follow(MemoryLevel.WARN) == 512
        assert budget.follow(MemoryLevel.SLOW) == 256
        assert budget.follow(MemoryLevel.CRITICAL) == 16
        assert budget.follow(MemoryLevel.NORMAL) == 80

    def test_nonsense_bounds_are_refused(self) -> None:
        with pytest.raises(ValueError, match="minimum <= maximum"):
            ReadBudget(minimum=10, maximum=5)
