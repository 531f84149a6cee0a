"""The offline agent protects itself as the full one does: its log read size is a metric that
self-protection moves, and ``kill -USR1`` writes a crash report with the pipeline's queue."""

import json
import signal

from tests.integration.logs.conftest import LogAgent
from tests.support.waiting import eventually_sync


def test_sigusr1_writes_a_crash_report_and_the_read_size_is_exported(agent: LogAgent) -> None:
    assert agent.metric("nodekeeper_log_read_chunk_bytes") == 256 * 1024  # the setting, calm
    agent.send_signal(signal.SIGUSR1)
    reports = eventually_sync(
        lambda: sorted(agent.state_dir.glob("crash-*.json")), what="a crash report", seconds=30
    )
    report = json.loads(reports[0].read_text())
    assert report["reason"] == "SIGUSR1"
    assert "log_queue_bytes" in report["snapshots"][-1]["queue_depths"]
    assert agent.alive()
