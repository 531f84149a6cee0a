"""Backup metrics: counted when runs end, last success rebuilt from the API server."""

from prometheus_client import CollectorRegistry

from nodekeeper.backups.metrics import BackupMetrics, rebuild
from tests.unit.backups.fakes import FakeBackupRuns, run


def test_an_ended_run_is_counted_by_source_phase_and_reason() -> None:
    registry = CollectorRegistry()
    metrics = BackupMetrics(registry)
    body = run("a", phase="Failed")
    metrics.ended(
        body,
        source="executed",
        phase="Failed",
        reason="WrongPassword",
        duration_seconds=3.0,
        log_bytes=100,
        data_added=None,
        completed_at=1000.0,
    )
    labels = {"task_type": "backup", "phase": "Failed", "source": "executed"}
    assert registry.get_sample_value("nodekeeper_backup_runs_total", labels) == 1
    assert (
        registry.get_sample_value("nodekeeper_backup_errors_total", {"reason": "WrongPassword"})
        == 1
    )
    assert registry.get_sample_value("nodekeeper_backup_log_bytes_count") == 1
    last = registry.get_sample_value(
        "nodekeeper_backup_last_success_timestamp_seconds", {"namespace": "ns", "policy": "daily"}
    )
    assert last is None  # a failure is not a success


def test_success_moves_the_gauge_forward_only_and_counts_data() -> None:
    registry = CollectorRegistry()
    metrics = BackupMetrics(registry)
    for moment in (2000.0, 1000.0):
        metrics.ended(
            run("a", phase="Succeeded"),
            source="ingested",
            phase="Succeeded",
            reason="Succeeded",
            duration_seconds=None,
            log_bytes=None,
            data_added=10,
            completed_at=moment,
        )
    labels = {"namespace": "ns", "policy": "daily"}
    assert (
        registry.get_sample_value("nodekeeper_backup_last_success_timestamp_seconds", labels)
        == 2000.0
    )
    assert registry.get_sample_value("nodekeeper_backup_data_added_bytes_total", labels) == 20


async def test_rebuild_takes_the_newest_success_per_policy_of_this_node() -> None:
    runs = FakeBackupRuns(
        [
            run("old", phase="Succeeded", completed="2026-01-01T00:00:00Z"),
            run("new", phase="Succeeded", completed="2026-01-02T00:00:00Z"),
            run("failed", phase="Failed", completed="2026-01-03T00:00:00Z"),
            run("weekly", policy="weekly", phase="Succeeded", completed="2026-01-01T00:00:00Z"),
            run("elsewhere", node="n2", phase="Succeeded", completed="2026-02-01T00:00:00Z"),
        ]
    )
    registry = CollectorRegistry()
    assert await rebuild(BackupMetrics(registry), runs, node_name="n1") == 4
    name = "nodekeeper_backup_last_success_timestamp_seconds"
    assert registry.get_sample_value(name, {"namespace": "ns", "policy": "daily"}) == 1767312000
    assert registry.get_sample_value(name, {"namespace": "ns", "policy": "weekly"}) == 1767225600
