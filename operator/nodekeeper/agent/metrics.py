"""The agent's own memory as Prometheus metrics, read fresh at scrape time."""

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from nodekeeper.agent.selfprotect import SelfMemory


class SelfMemoryCollector(Collector):
    def __init__(self, self_memory: Callable[[], SelfMemory]) -> None:
        self._self_memory = self_memory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        memory = self._self_memory()
        used = GaugeMetricFamily("nodekeeper_agent_memory_bytes", "The agent's own memory use.")
        used.add_metric([], memory.used_bytes)
        yield used
        limit = GaugeMetricFamily(
            "nodekeeper_agent_memory_limit_bytes",
            "The agent's memory limit (its cgroup's, else the memory_limit_bytes setting); "
            "absent when there is none.",
        )
        if memory.limit_bytes is not None:
            limit.add_metric([], memory.limit_bytes)
        yield limit
        level = GaugeMetricFamily(
            "nodekeeper_agent_memory_level",
            "Self-protection level: 0 normal, 1 warn (70 %), 2 slow (85 %), 3 critical (90 %).",
        )
        level.add_metric([], int(memory.level))
        yield level
