"""What `nodekeeper backups list|show|logs|ingest` do, against in-memory kube stand-ins."""

import datetime
import json
from pathlib import Path

import pytest

from nodekeeper.backups import commands
from nodekeeper.backups.commands import IngestError, ListFilters
from nodekeeper.backups.runlogs import RunLogs
from tests.unit.backups.fakes import FakeBackupRuns, FakeConfigMaps, run

PHASE = "nodekeeper.io/phase"


def fleet() -> FakeBackupRuns:
    return FakeBackupRuns(
        [
            run("a", phase="Succeeded", labels={PHASE: "Succeeded"}),
            run("b", phase="Failed", labels={PHASE: "Failed"}, task_type="check"),
            run("c", phase="Failed", labels={PHASE: "Failed"}, created="2026-03-01T00:00:00Z"),
            run("d", node="n2", phase="Failed", labels={PHASE: "Failed"}),
        ]
    )


async def test_list_filters_on_the_server_and_pages_with_its_token() -> None:
    runs = fleet()
    items, token = await commands.list_runs(runs, ListFilters(phase="Failed", node="n1", limit=1))
    assert [i["metadata"]["name"] for i in items] == ["b"]
    assert token is not None
    items, token = await commands.list_runs(
        runs, ListFilters(phase="Failed", node="n1", limit=1, continue_token=token)
    )
    assert [i["metadata"]["name"] for i in items] == ["c"]
    assert token is None


async def test_list_filters_task_type_and_time_on_the_client() -> None:
    runs = fleet()
    since = datetime.datetime(2026, 2, 1, tzinfo=datetime.UTC)
    items, _ = await commands.list_runs(runs, ListFilters(since=since))
    assert [i["metadata"]["name"] for i in items] == ["c"]
    items, _ = await commands.list_runs(runs, ListFilters(task_type="check"))
    assert [i["metadata"]["name"] for i in items] == ["b"]


async def test_rendering_as_table_and_json() -> None:
    items, _ = await commands.list_runs(fleet(), ListFilters(node="n1"))
    table = commands.render(items, "tok", "table").splitlines()
    assert table[0].split() == [
        "NAMESPACE", "NAME", "NODE", "POLICY", "TASK", "PHASE", "DURATION", "SNAPSHOT"
    ]  # fmt: skip
    assert table[1].split() == ["ns", "a", "n1", "daily", "backup", "Succeeded"]
    assert table[-1] == "(more: --continue tok)"
    shown = json.loads(commands.render(items, None, "json"))
    assert [i["metadata"]["name"] for i in shown["items"]] == ["a", "b", "c"]


async def test_ingest_creates_the_run_then_its_chunks_and_is_repeatable() -> None:
    runs, config_maps = FakeBackupRuns(), FakeConfigMaps()
    logs = RunLogs(config_maps)
    result = {"taskId": "t1", "status": "Succeeded", "durationSeconds": 2, "log": "ignored"}
    log = b"line\n" * 200_000
    for _ in range(2):
        made = await commands.ingest(
            runs, logs, namespace="ns", name="ext", node="n1", policy="daily",
            task_type="backup", result=result, log=log,
        )  # fmt: skip
    assert made["metadata"]["annotations"] == {"nodekeeper.io/log-chunks": "3"}
    assert "log" not in made["spec"]["result"]
    assert await commands.run_log(runs, logs, "ns", "ext") == log


async def test_ingest_refuses_an_invalid_result_or_a_name_taken_by_another_task() -> None:
    runs, logs = FakeBackupRuns(), RunLogs(FakeConfigMaps())
    with pytest.raises(IngestError, match="status"):
        await commands.ingest(
            runs, logs, namespace="ns", name="x", node="n1", policy="daily",
            task_type="backup", result={"taskId": "t", "status": "Maybe", "durationSeconds": 1},
        )  # fmt: skip
    ok = {"taskId": "t", "status": "Failed", "durationSeconds": 1}
    await commands.ingest(
        runs, logs, namespace="ns", name="x", node="n1", policy="daily",
        task_type="backup", result=ok,
    )  # fmt: skip
    with pytest.raises(IngestError, match="exists for task 't'"):
        await commands.ingest(
            runs, logs, namespace="ns", name="x", node="n1", policy="daily",
            task_type="backup", result={**ok, "taskId": "other"},
        )  # fmt: skip


def test_a_result_file_is_read_as_yaml_or_json(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text('{"taskId": "t", "status": "Succeeded", "durationSeconds": 1}')
    assert commands.load_result(path)["taskId"] == "t"
    path.write_text("- a list\n")
    with pytest.raises(IngestError, match="mapping"):
        commands.load_result(path)


async def test_show_drops_managed_fields() -> None:
    runs = fleet()
    runs.runs["ns", "a"]["metadata"]["managedFields"] = [{"manager": "x"}]
    shown = await commands.show_run(runs, "ns", "a")
    assert "managedFields" not in shown
    assert "name: a" in shown
