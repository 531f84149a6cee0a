"""Prometheus metrics of the agent, all in one registry object so each test can have its own.

Names follow Prometheus conventions (``_total`` counters, base units). docs/reference.md lists
every metric; a test compares that list with this registry.
"""

from prometheus_client import CollectorRegistry, Counter, Info


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.agent_info = Info(
            "nodekeeper_agent",
            "The agent's version and node.",
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
        self.handler_errors = Counter(
            "nodekeeper_handler_errors_total",
            "Handler runs that ended in an error, by kind and stable error code.",
            ["kind", "code"],
            registry=self.registry,
        )
