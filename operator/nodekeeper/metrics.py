"""Prometheus metrics of the agent, all in one registry object so each test can have its own.

Names follow Prometheus conventions (``_total`` counters, base units). docs/reference.md lists
every metric; a test compares that list with this registry.
"""

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

WORKLOAD_PHASES = ("Pending", "Running", "Succeeded", "Failed")


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
