"""Which finished runs the history limits delete, and which labels a run carries."""

from typing import Any

from nodekeeper.backups.history import select_for_deletion, wanted_labels


def run(name: str, phase: str | None, completed: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if phase:
        status["phase"] = phase
    if completed:
        status["completionTime"] = completed
    return {
        "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": status,
    }


def names(runs: list[Any]) -> list[str]:
    return [r["metadata"]["name"] for r in runs]


def test_the_oldest_beyond_each_limit_are_deleted() -> None:
    runs = [run(f"ok-{i}", "Succeeded", f"2026-01-01T00:00:{i:02d}Z") for i in range(5)] + [
        run(f"bad-{i}", "Failed", f"2026-01-01T00:01:{i:02d}Z") for i in range(3)
    ]
    doomed = select_for_deletion(runs, succeeded_limit=3, failed_limit=2)
    assert names(doomed) == ["ok-0", "ok-1", "bad-0"]


def test_partially_failed_counts_as_failed() -> None:
    runs = [
        run("p", "PartiallyFailed", "2026-01-01T00:00:01Z"),
        run("f", "Failed", "2026-01-01T00:00:02Z"),
    ]
    assert names(select_for_deletion(runs, succeeded_limit=10, failed_limit=1)) == ["p"]


def test_running_and_pending_runs_are_never_deleted() -> None:
    runs = [run("r", "Running"), run("p", "Pending"), run("n", None)]
    assert select_for_deletion(runs, succeeded_limit=0, failed_limit=0) == []


def test_within_limits_nothing_goes() -> None:
    runs = [run("a", "Succeeded", "2026-01-01T00:00:01Z")]
    assert select_for_deletion(runs, succeeded_limit=1, failed_limit=0) == []


def test_labels_follow_spec_and_phase() -> None:
    body = {"spec": {"policy": "daily", "nodeName": "n1"}}
    assert wanted_labels(body, "Failed") == {
        "nodekeeper.io/policy": "daily",
        "nodekeeper.io/node": "n1",
        "nodekeeper.io/phase": "Failed",
    }
    assert "nodekeeper.io/phase" not in wanted_labels(body, None)
