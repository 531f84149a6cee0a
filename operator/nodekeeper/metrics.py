"""Prometheus metrics of the agent, all in one registry object so each test can have its own.

Names follow Prometheus conventions (``_total`` counters, base units). docs/reference.md lists
every metric; a test compares that list with this registry.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from nodekeeper.pressure.psi import PsiSample
from nodekeeper.pressure.selfprotect import SelfMemory
from nodekeeper.pressure.thresholds import ConditionState

WORKLOAD_PHASES = ("Pending", "Running", "Succeeded", "Failed")
CONDITION_STATUSES = ("True", "False", "Unknown")


class PressureCollector(Collector):
    """PSI, the Node conditions and the agent's own memory, read fresh at scrape time."""

    def __init__(
        self,
        *,
        psi: Callable[[], Mapping[Any, PsiSample | None]],
        conditions: Callable[[], Iterable[ConditionState]],
        self_memory: Callable[[], SelfMemory],
    ) -> None:
        self._psi = psi
        self._conditions = conditions
        self._self_memory = self_memory

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        averages = GaugeMetricFamily(
            "nodekeeper_node_psi_ratio",
            "PSI running averages of the node as ratios (0-1).",
            labels=["resource", "line", "window"],
        )
        stalls = CounterMetricFamily(
            "nodekeeper_node_psi_stall_seconds",
            "Total time tasks stalled on the resource (PSI total).",
            labels=["resource", "line"],
        )
        for resource, sample in sorted(self._psi().items()):
            if sample is None:
                continue
            lines = [("some", sample.some)] + ([("full", sample.full)] if sample.full else [])
            for name, line in lines:
                for window in ("avg10", "avg60", "avg300"):
                    averages.add_metric([resource, name, window], getattr(line, window))
                stalls.add_metric([resource, name], line.total_seconds)
        yield averages
        yield stalls

        conditions = GaugeMetricFamily(
            "nodekeeper_node_condition",
            "The agent's Node conditions: 1 for the current status, 0 for the others.",
            labels=["condition", "status"],
        )
        for state in self._conditions():
            for status in CONDITION_STATUSES:
                conditions.add_metric([state.type, status], 1.0 if state.status == status else 0.0)
        yield conditions

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


class WorkloadPhases(Collector):
    """Workloads by phase, built fresh from a snapshot at scrape time: no stale series."""

    def __init__(self, snapshot: Callable[[], Mapping[str, str]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "nodekeeper_workloads", "Workloads on this node by phase.", labels=["phase"]
        )
        phases = list(self._snapshot().values())
        for phase in WORKLOAD_PHASES:
            family.add_metric([phase], phases.count(phase))
        yield family


class Metrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        workload_phases: Callable[[], Mapping[str, str]] = dict,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.registry.register(WorkloadPhases(workload_phases))
        self.agent_info = Info(
            "nodekeeper_agent",
            "The agent's version, node and node id (machine-id, else MAC).",
            registry=self.registry,
        )
        self.status_writes = Counter(
            "nodekeeper_status_writes_total",
            "Status writes (server-side apply) by kind and outcome: applied, unchanged, failed.",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.foreign_events = Counter(
            "nodekeeper_foreign_events_total",
            "Watch events for objects of other nodes that reached this agent; stays 0 when the "
            "API server applies the spec.nodeName field selector.",
            ["kind"],
            registry=self.registry,
        )
        self.workload_restarts = Counter(
            "nodekeeper_workload_restarts_total",
            "Workload containers restarted by their restart policy.",
            registry=self.registry,
        )
        self.reconcile_duration = Histogram(
            "nodekeeper_reconcile_duration_seconds",
            "Time a create/update/resume handler took, by kind.",
            ["kind"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.garbage_collected = Counter(
            "nodekeeper_garbage_collected_total",
            "Clean-up actions: orphan_removed (a labelled container with no Workload), "
            "recreated (a Workload whose container vanished), ttl_deleted (ttlSecondsAfterFailed).",
            ["action"],
            registry=self.registry,
        )
        self.handler_errors = Counter(
            "nodekeeper_handler_errors_total",
            "Handler runs that ended in an error, by kind and stable error code.",
            ["kind", "code"],
            registry=self.registry,
        )
