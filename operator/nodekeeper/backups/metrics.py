"""Backup metrics. The last-success gauge is rebuilt from the BackupRuns at start-up
(:func:`rebuild`), so a restarted agent reports the truth, not an empty memory.
"""

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from nodekeeper.api.times import parse_seconds
from nodekeeper.kube.backupruns import BackupRuns

LOG_BYTES_BUCKETS = (1024, 16384, 131072, 1048576, 4194304, 8388608, 33554432)
DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 21600)


class BackupMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._newest: dict[tuple[str, str], float] = {}
        self.runs = Counter(
            "nodekeeper_backup_runs_total",
            "BackupRuns that ended on this node, by task type, phase and source "
            "(executed: run here; ingested: recorded here).",
            ["task_type", "phase", "source"],
            registry=registry,
        )
        self.errors = Counter(
            "nodekeeper_backup_errors_total",
            "BackupRuns that did not succeed, by the reason of their Completed condition.",
            ["reason"],
            registry=registry,
        )
        self.log_bytes = Histogram(
            "nodekeeper_backup_log_bytes",
            "Size of a run's stored log (after truncation), in bytes.",
            buckets=LOG_BYTES_BUCKETS,
            registry=registry,
        )
        self.duration = Histogram(
            "nodekeeper_backup_duration_seconds",
            "How long runs took, by task type.",
            ["task_type"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.data_added = Counter(
            "nodekeeper_backup_data_added_bytes_total",
            "Bytes added to repositories by backups (restic's data_added), by policy.",
            ["namespace", "policy"],
            registry=registry,
        )
        self.last_success = Gauge(
            "nodekeeper_backup_last_success_timestamp_seconds",
            "Completion time of the newest Succeeded run per policy on this node (Unix time).",
            ["namespace", "policy"],
            registry=registry,
        )

    def ended(
        self,
        body: Mapping[str, Any],
        *,
        source: str,
        phase: str,
        reason: str,
        duration_seconds: float | None,
        log_bytes: int | None,
        data_added: int | None,
        completed_at: float | None,
    ) -> None:
        """Count one run that ended (call once per run, when its final status is written)."""
        spec = body.get("spec") or {}
        namespace = str((body.get("metadata") or {}).get("namespace", ""))
        policy = str(spec.get("policy", ""))
        self.runs.labels(task_type=str(spec.get("taskType", "")), phase=phase, source=source).inc()
        if phase != "Succeeded":
            self.errors.labels(reason=reason).inc()
        if duration_seconds is not None:
            self.duration.labels(task_type=str(spec.get("taskType", ""))).observe(duration_seconds)
        if log_bytes is not None:
            self.log_bytes.observe(log_bytes)
        if data_added:
            self.data_added.labels(namespace=namespace, policy=policy).inc(data_added)
        if phase == "Succeeded" and completed_at is not None:
            self.record_success(namespace, policy, completed_at)

    def record_success(self, namespace: str, policy: str, moment: float) -> None:
        key = (namespace, policy)
        if moment > self._newest.get(key, 0.0):
            self._newest[key] = moment
            self.last_success.labels(namespace=namespace, policy=policy).set(moment)


def success_time(run: Mapping[str, Any]) -> float | None:
    """When a Succeeded run completed: completionTime, else (an ingested run) its creation."""
    status = run.get("status") or {}
    if status.get("phase") != "Succeeded":
        return None
    completed = parse_seconds(status.get("completionTime"))
    if completed is not None:
        return completed
    return parse_seconds((run.get("metadata") or {}).get("creationTimestamp"))


async def rebuild(metrics: BackupMetrics, runs: BackupRuns, *, node_name: str) -> int:
    """Set the last-success gauge from this node's BackupRuns; returns how many were read."""
    items = await runs.all(None, field_selector=f"spec.nodeName={node_name}")
    for run in items:
        moment = success_time(run)
        if moment is None:
            continue
        metadata = run.get("metadata") or {}
        spec = run.get("spec") or {}
        metrics.record_success(
            str(metadata.get("namespace", "")), str(spec.get("policy", "")), moment
        )
    return len(items)
