"""History limits and labels applied through the kube boundary (in-memory here)."""

from nodekeeper.backups.history import History
from tests.unit.backups.fakes import FakeBackupRuns, run

POLICY = "nodekeeper.io/policy"


async def test_prune_deletes_only_this_nodes_oldest_runs_of_the_policy() -> None:
    labels = {POLICY: "daily"}
    runs = FakeBackupRuns(
        [
            *(
                run(f"ok-{i}", phase="Succeeded", completed=f"2026-01-0{i + 1}T00:00:00Z",
                    labels=labels)
                for i in range(4)
            ),
            run("elsewhere", node="n2", phase="Succeeded", labels=labels),
            run("weekly", policy="weekly", phase="Succeeded", labels={POLICY: "weekly"}),
        ]
    )  # fmt: skip
    history = History(runs, node_name="n1", succeeded_limit=2, failed_limit=1)
    assert await history.prune("ns", "daily") == ["ok-0", "ok-1"]
    assert sorted(name for _, name in runs.runs) == ["elsewhere", "ok-2", "ok-3", "weekly"]


async def test_labels_are_patched_only_when_they_change() -> None:
    runs = FakeBackupRuns([run("a")])
    history = History(runs, node_name="n1")
    assert await history.label(runs.runs["ns", "a"], "Running")
    assert runs.runs["ns", "a"]["metadata"]["labels"] == {
        "nodekeeper.io/policy": "daily",
        "nodekeeper.io/node": "n1",
        "nodekeeper.io/phase": "Running",
    }
    assert not await history.label(runs.runs["ns", "a"], "Running")
