"""What each running Workload's container uses: memory against its limit, OOM kills, CPU
throttling and, where the cgroup has them, its PSI averages.

The wiring lists the running Workload containers (one Docker call) every sampling interval and
hands them to :meth:`WorkloadUsage.sample`, which reads their cgroups (blocking file reads: call
it in a thread). The metrics collector exports the last sample, so a scrape never touches Docker
or the cgroup filesystem. A container whose cgroup is gone (it exited between the listing and
the read) is left out of that sample; nothing raises.
"""

import dataclasses
import threading
from collections.abc import Iterable, Mapping

from nodekeeper.pressure.cgroups import CgroupReader, CgroupStats


@dataclasses.dataclass(frozen=True)
class WorkloadKey:
    namespace: str
    name: str


@dataclasses.dataclass(frozen=True)
class ContainerUsage:
    workload: WorkloadKey
    container_id: str
    stats: CgroupStats


class WorkloadUsage:
    def __init__(self, reader: CgroupReader) -> None:
        self._reader = reader
        self._latest: tuple[ContainerUsage, ...] = ()
        self._lock = threading.Lock()

    def sample(self, containers: Iterable[tuple[WorkloadKey, str]]) -> tuple[ContainerUsage, ...]:
        """Read the cgroups of ``(workload, container id)`` pairs; the result replaces the last."""
        usages = []
        for workload, container_id in containers:
            cgroup = self._reader.container(container_id)
            if cgroup is None:
                continue
            usages.append(ContainerUsage(workload, container_id, self._reader.read(cgroup)))
        latest = tuple(sorted(usages, key=lambda u: (u.workload.namespace, u.workload.name)))
        with self._lock:
            self._latest = latest
        return latest

    def latest(self) -> tuple[ContainerUsage, ...]:
        with self._lock:
            return self._latest


def workload_containers(
    running: Mapping[str, Mapping[str, str]], *, namespace_label: str, name_label: str
) -> list[tuple[WorkloadKey, str]]:
    """``(workload, container id)`` for the running containers that name their Workload."""
    pairs = []
    for container_id, labels in running.items():
        namespace, name = labels.get(namespace_label), labels.get(name_label)
        if namespace and name:
            pairs.append((WorkloadKey(namespace, name), container_id))
    return pairs
