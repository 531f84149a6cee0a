"""The agent's memory level moves the log readers' budget: smaller reads near the limit."""

from pathlib import Path

from nodekeeper.agent.recorder import FlightRecorder
from nodekeeper.agent.selfprotect import MemoryLevel, ReadBudget, SelfMemory
from nodekeeper.agent.selfwatch import SelfWatch


class Levels:
    def __init__(self) -> None:
        self.level = MemoryLevel.NORMAL

    def read(self) -> SelfMemory:
        return SelfMemory(used_bytes=1, limit_bytes=2, limit_source="setting", level=self.level)


async def test_reads_shrink_at_the_critical_level_and_grow_back_when_calm(tmp_path: Path) -> None:
    levels = Levels()
    budget = ReadBudget(minimum=16 * 1024, maximum=256 * 1024, step=16 * 1024)
    watch = SelfWatch(
        protection=levels,  # type: ignore[arg-type]
        recorder=FlightRecorder(),
        state_dir=tmp_path,
        pressure=dict,
        budgets=[budget],
    )
    watch.sample()
    assert budget.size == 256 * 1024
    levels.level = MemoryLevel.CRITICAL
    watch.sample()
    assert budget.size == 16 * 1024
    levels.level = MemoryLevel.NORMAL
    watch.sample()
    assert budget.size == 32 * 1024  # additive increase, step by step
