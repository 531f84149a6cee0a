"""Pressure as Prometheus metrics: PSI, the Node conditions, and what each Workload container
uses (the agent's own memory is agent/metrics.py's).

A custom collector that reads fresh at scrape time (no stale series, no bookkeeping), registered
into the agent's one registry by the wiring.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from nodekeeper.pressure.psi import PsiSample
from nodekeeper.pressure.thresholds import ConditionState
from nodekeeper.pressure.usage import ContainerUsage

CONDITION_STATUSES = ("True", "False", "Unknown")


class PressureCollector(Collector):
    """PSI, the Node conditions and unreadable pressure files, read fresh at scrape time."""

    def __init__(
        self,
        *,
        psi: Callable[[], Mapping[Any, PsiSample | None]],
        conditions: Callable[[], Iterable[ConditionState]],
        read_errors: Callable[[], Mapping[str, int]] = dict,
    ) -> None:
        self._read_errors = read_errors
        self._psi = psi
        self._conditions = conditions

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

        errors = CounterMetricFamily(
            "nodekeeper_pressure_read_errors",
            "Reads of a PSI or cgroup file whose content could not be parsed (the figure was "
            "reported unknown; the log names the file once).",
            labels=["source"],
        )
        for source, count in sorted(self._read_errors().items()):
            errors.add_metric([source], count)
        yield errors


class WorkloadUsageCollector(Collector):
    """Each running Workload container's cgroup figures, from the last sample (pressure/usage)."""

    def __init__(self, latest: Callable[[], Iterable[ContainerUsage]]) -> None:
        self._latest = latest

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["namespace", "workload"]
        working_set = GaugeMetricFamily(
            "nodekeeper_workload_memory_working_set_bytes",
            "A Workload container's memory in use minus inactive file pages (as the kubelet "
            "counts it), from its cgroup.",
            labels=labels,
        )
        limit = GaugeMetricFamily(
            "nodekeeper_workload_memory_limit_bytes",
            "A Workload container's cgroup memory limit; absent when unlimited.",
            labels=labels,
        )
        oom_kills = CounterMetricFamily(
            "nodekeeper_workload_oom_kills",
            "Processes the OOM killer killed in a Workload's container (starts at 0 with each "
            "new container).",
            labels=labels,
        )
        throttled = CounterMetricFamily(
            "nodekeeper_workload_cpu_throttled_seconds",
            "Time a Workload container was throttled by its CPU quota.",
            labels=labels,
        )
        quota = GaugeMetricFamily(
            "nodekeeper_workload_cpu_quota_cores",
            "A Workload container's CPU quota in cores; absent when it has none.",
            labels=labels,
        )
        psi = GaugeMetricFamily(
            "nodekeeper_workload_psi_ratio",
            "A Workload container's PSI avg10 as a ratio (0-1), where its cgroup reports PSI.",
            labels=[*labels, "resource", "line"],
        )
        for usage in self._latest():
            key = [usage.workload.namespace, usage.workload.name]
            stats = usage.stats
            used = stats.memory_working_set_bytes
            if used is None:
                used = stats.memory_current_bytes
            if used is not None:
                working_set.add_metric(key, used)
            if stats.memory_limit_bytes is not None:
                limit.add_metric(key, stats.memory_limit_bytes)
            if stats.oom_kill_events is not None:
                oom_kills.add_metric(key, stats.oom_kill_events)
            if stats.throttled_seconds is not None:
                throttled.add_metric(key, stats.throttled_seconds)
            if stats.cpu_quota_cores is not None:
                quota.add_metric(key, stats.cpu_quota_cores)
            for resource, sample in sorted(stats.psi.items()):
                psi.add_metric([*key, resource, "some"], sample.some.avg10)
                if sample.full is not None:
                    psi.add_metric([*key, resource, "full"], sample.full.avg10)
        yield from (working_set, limit, oom_kills, throttled, quota, psi)
