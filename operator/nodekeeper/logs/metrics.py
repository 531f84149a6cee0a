"""The log pipeline's Prometheus metrics (``nodekeeper_log_*``).

None of them carries a container label: a node runs hundreds of short-lived containers, and
per-container figures are what ``nodekeeper logs`` is for. Gauges that describe the pipeline's
state right now (lag, files watched, queue, store size) are read from the pipeline at scrape time.
"""

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

# Docker's timestamp to stored: the goal is p99 <= 250 ms, so the buckets are dense below 1 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.175, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0)
WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class LogMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, text: str) -> Counter:
            return Counter(f"nodekeeper_log_{name}", text, registry=registry)

        self.lines = counter("lines", "Log lines stored (after partial lines were merged).")
        self.bytes = counter("bytes", "Bytes of json-file logs read.")
        self.rotations = counter("rotations", "Rotated log files followed to their end.")
        self.truncations = counter(
            "truncations", "Log files found shorter than the read offset (copytruncate)."
        )
        self.malformed = counter(
            "malformed_lines", "Records that were not json-file records, stored raw and flagged."
        )
        self.partial_merges = counter(
            "partial_merges", "Lines joined from Docker's 16 KiB partial records."
        )
        self.truncated_lines = counter(
            "truncated_lines", "Lines cut at log_max_line_bytes (the head is stored)."
        )
        self.truncated_bytes = counter(
            "truncated_bytes", "Bytes cut away from lines longer than log_max_line_bytes."
        )
        self.lost_bytes = counter(
            "lost_bytes", "Bytes Docker deleted (rotated away) before the agent could read them."
        )
        self.lost_files = counter(
            "lost_files",
            "Files gone when the agent came back whose final size it never saw (bytes unknown).",
        )
        self.watch_fallbacks = counter(
            "watch_fallbacks", "Containers polled because no inotify watch was available."
        )
        self.drain_timeouts = counter(
            "drain_timeouts",
            "Container removals that went ahead after log_drain_timeout_seconds without a drain.",
        )
        self.backpressure = counter(
            "backpressure", "Times readers paused because log_queue_bytes was reached."
        )
        self.store_full = counter(
            "store_full", "Store writes refused for lack of disk space (reading pauses)."
        )
        self.retention_deleted_bytes = counter(
            "retention_deleted_bytes", "Stored bytes deleted by retention (age or size)."
        )
        self.store_write_seconds = Histogram(
            "nodekeeper_log_store_write_seconds",
            "Time of one store transaction (compression included).",
            buckets=WRITE_BUCKETS,
            registry=registry,
        )
        self.latency_seconds = Histogram(
            "nodekeeper_log_latency_seconds",
            "Docker's timestamp of the oldest line of each stored batch to the commit.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )


class LogStateCollector(Collector):
    """Gauges read from the pipeline at scrape time."""

    def __init__(self, state: Callable[[], dict[str, float]]) -> None:
        self._state = state

    def collect(self) -> list[GaugeMetricFamily]:
        values = self._state()
        return [
            GaugeMetricFamily(f"nodekeeper_log_{name}", text, value=values.get(name, 0.0))
            for name, text in GAUGES.items()
        ]


class WorkloadLogCollector(Collector):
    """Lines and bytes stored per Workload: what a Workload's status never carries (a write per
    batch would flood etcd), as counters labelled by namespace and Workload name."""

    def __init__(self, totals: Callable[[], dict[tuple[str, str], list[int]]]) -> None:
        self._totals = totals

    def collect(self) -> list[CounterMetricFamily]:
        labels = ["namespace", "workload"]
        lines = CounterMetricFamily(
            "nodekeeper_workload_log_lines", "Log lines stored per Workload.", labels=labels
        )
        read = CounterMetricFamily(
            "nodekeeper_workload_log_bytes", "Log bytes read per Workload.", labels=labels
        )
        for (namespace, workload), (count, size) in sorted(self._totals().items()):
            lines.add_metric([namespace, workload], count)
            read.add_metric([namespace, workload], size)
        return [lines, read]


GAUGES = {
    "files_watched": "Log files the agent holds open (rotated ones until read to their end).",
    "containers_followed": "Containers whose logs the agent follows.",
    "containers_unfollowed": "Containers the rules select whose log driver keeps nothing to read.",
    "lag_bytes": "Bytes written by Docker and not yet stored, over all followed files.",
    "queue_bytes": "Bytes read and waiting for the store (bounded by log_queue_bytes).",
    "store_bytes": "Size of the log store on disk (logs.db with its WAL and shared memory).",
    "store_paused": "1 while the store refuses writes (disk full) and reading is paused.",
    "polled_containers": "Containers polled instead of watched with inotify.",
    "read_chunk_bytes": "Bytes one log read may take now: log_read_chunk_bytes, smaller while "
    "the agent's memory is past 85 % of its limit (self-protection).",
}
