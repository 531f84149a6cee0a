"""Node totals: how full the node is, whatever the stalls say.

PSI says whether tasks are *waiting*; a node can be 95 % full without a stall yet, and the next
Workload is what tips it. Admission therefore also looks at plain totals: memory in use (what
is not available, as ``free`` computes it), CPU busy since the previous read, and the disk that
holds Docker's data (images, writable layers, json-file logs). Each figure comes from an
injectable callable so tests, and nodes with other layouts, can supply their own.
"""

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path

import psutil

from nodekeeper.pressure.absence import AbsenceLog

logger = logging.getLogger(__name__)

DOCKER_ROOT = Path("/var/lib/docker")


def memory_used_ratio() -> float:
    """Share of memory not available to new work (page cache that can be dropped is free)."""
    return float(psutil.virtual_memory().percent) / 100.0


def cpu_used_ratio() -> float:
    """The 1-minute load average per core, capped at 1.

    A load average, not an instant CPU percentage: admission asks "is this node busy", and an
    instant sample taken during a burst of reconciles says more about the burst than the node.
    """
    cores = os.cpu_count() or 1
    return min(1.0, os.getloadavg()[0] / cores)


def disk_used_ratio(path: Path) -> float:
    """Share of the filesystem holding ``path`` in use, blocks reserved for root excluded."""
    return float(psutil.disk_usage(str(path)).percent) / 100.0


@dataclasses.dataclass(frozen=True)
class NodeTotals:
    memory_used_ratio: float | None
    cpu_used_ratio: float | None
    disk_used_ratio: float | None
    disk_path: Path


class TotalsReader:
    def __init__(
        self,
        *,
        disk_path: Path = DOCKER_ROOT,
        memory: Callable[[], float] = memory_used_ratio,
        cpu: Callable[[], float] = cpu_used_ratio,
        disk: Callable[[Path], float] = disk_used_ratio,
    ) -> None:
        self.disk_path = disk_path
        self._memory = memory
        self._cpu = cpu
        self._disk = disk
        self._absence = AbsenceLog(logger)

    def read(self) -> NodeTotals:
        return NodeTotals(
            memory_used_ratio=self._memory(),
            cpu_used_ratio=self._cpu(),
            disk_used_ratio=self._disk_ratio(),
            disk_path=self.disk_path,
        )

    def _disk_ratio(self) -> float | None:
        try:
            ratio = self._disk(self.disk_path)
        except OSError as e:
            self._absence.missing("disk", self.disk_path, what="disk usage", error=e)
            return None
        self._absence.present("disk", self.disk_path, what="disk usage")
        return ratio
