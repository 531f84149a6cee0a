"""BackupRuns on the real API server and the real Docker engine, end to end.

The agent here runs in this process, for a node name of its own, built from the same pieces
app.run() uses plus the backup services (until app.py wires them into `nodekeeper run`). A node
of its own keeps the session's agent process away from these runs: the API server's
spec.nodeName field selector never sends them there.
"""

import asyncio
import concurrent.futures
import json
import os
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import docker
import pytest

from e2e.tests.conftest import TEST_IMAGE, Kubectl
from e2e.tests.identity import AgentIdentity
from nodekeeper.api.times import parse_seconds
from nodekeeper.backups import commands
from nodekeeper.backups.runlogs import RunLogs
from nodekeeper.kube import client
from nodekeeper.kube.backupruns import BackupRuns
from nodekeeper.kube.configmaps import ConfigMaps
from tests.support.agent import AgentProcess
from tests.support.waiting import eventually_sync

T = TypeVar("T")
DOCKER_HOST = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
NODE = f"e2e-backups-{uuid.uuid4().hex[:6]}"
SUCCEEDED_LIMIT = 2
FAILED_LIMIT = 1
SUMMARY = {
    "message_type": "summary",
    "files_new": 5,
    "files_changed": 2,
    "files_unmodified": 7,
    "data_added": 4096,
    "total_bytes_processed": 8192,
    "snapshot_id": "1a2b3c4d",
}


@pytest.fixture(scope="module")
def backup_agent(
    agent_identity: AgentIdentity,
    crds: None,
    kubectl: Kubectl,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AgentProcess]:
    """`nodekeeper run` for node NODE with small history limits; restarted by the tests on one
    state directory (one log store across restarts, as on a node)."""
    agent = AgentProcess.for_node(
        NODE,
        agent_identity.kubeconfig(NODE),
        tmp_path_factory.mktemp("backup-agent"),
        *("--backup-succeeded-history-limit", str(SUCCEEDED_LIMIT)),
        *("--backup-failed-history-limit", str(FAILED_LIMIT)),
        *("--admission-cpu-ratio", "1", "--pressure-enter-ratio", "0.95"),
        *("--pressure-exit-ratio", "0.9"),
    )
    agent.start()
    try:
        yield agent
    finally:
        # While the agent still runs, so it releases its finalizers.
        kubectl.run(
            "delete",
            "br",
            "-A",
            f"--field-selector=spec.nodeName={NODE}",
            "--timeout=60s",
            check=False,
        )
        assert agent.stop() == 0


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    engine = docker.from_env()
    yield engine
    engine.close()


def run_object(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "nodekeeper.io/v1alpha1",
        "kind": "BackupRun",
        "metadata": {"name": name, "namespace": namespace},
        # A policy per run unless given: the history limits apply per policy.
        "spec": {"nodeName": NODE, "policy": name, "taskType": "backup", **spec},
    }


def task(name: str, namespace: str, script: str, **spec: Any) -> dict[str, Any]:
    return run_object(
        name, namespace, image=TEST_IMAGE, command=["/bin/sh", "-c"], args=[script], **spec
    )


def printing(*messages: object, exit_code: int) -> str:
    return "; ".join([*(f"echo '{json.dumps(m)}'" for m in messages), f"exit {exit_code}"])


def wait_completed(
    kubectl: Kubectl, name: str, namespace: str, timeout: int = 90
) -> dict[str, Any]:
    kubectl.run(
        "wait", "--for=condition=Completed", f"br/{name}", "-n", namespace, f"--timeout={timeout}s"
    )
    return kubectl.get("br", name, "-n", namespace)


def completed(run: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in run["status"]["conditions"] if c["type"] == "Completed")


def events_of(kubectl: Kubectl, name: str, namespace: str) -> list[str]:
    found = kubectl.get("events", "-n", namespace, f"--field-selector=involvedObject.name={name}")
    return sorted(e["reason"] for e in found["items"])


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end on a loop of its own, in a thread of its own.

    Not asyncio.run() in the test's thread: the looptime plugin then makes a loop for the next
    sync test that nobody closes.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def stored_log(kubeconfig: str, namespace: str, name: str) -> bytes:
    async def read() -> bytes:
        api = client.api_client(client.load(Path(kubeconfig)))
        try:
            return await commands.run_log(
                BackupRuns(api), RunLogs(ConfigMaps(api)), namespace, name
            )
        finally:
            api.close()

    return run_async(read())


def chunk_names(kubectl: Kubectl, name: str, namespace: str) -> list[str]:
    found = kubectl.get("configmaps", "-n", namespace, "-l", f"nodekeeper.io/backuprun={name}")
    return sorted(item["metadata"]["name"] for item in found["items"])


def test_exit_codes_and_a_timeout_end_runs_as_restic_means_them(
    kubectl: Kubectl,
    backup_agent: AgentProcess,
    namespace: str,
    engine: docker.DockerClient,
    kubeconfig: str,
) -> None:
    error = {"message_type": "error", "error": {"message": "permission denied"}, "item": "/etc/x"}
    wrong = {"message_type": "exit_error", "code": 12, "message": "Fatal: wrong password"}
    kubectl.apply(task("ok", namespace, printing(SUMMARY, exit_code=0)))
    kubectl.apply(task("partial", namespace, printing(error, SUMMARY, exit_code=3)))
    kubectl.apply(task("password", namespace, printing(wrong, exit_code=12)))
    kubectl.apply(task("slow", namespace, "echo begun; sleep 120", timeoutSeconds=2))

    ok = wait_completed(kubectl, "ok", namespace)
    status = ok["status"]
    assert status["phase"] == "Succeeded"
    assert (completed(ok)["reason"], status["exitCode"], status["snapshotId"]) == (
        "Succeeded",
        0,
        "1a2b3c4d",
    )
    assert status["summary"] == {
        "filesNew": 5,
        "filesChanged": 2,
        "filesUnmodified": 7,
        "dataAddedBytes": 4096,
        "totalBytesProcessed": 8192,
    }
    assert status["startTime"] <= status["completionTime"]
    assert status["durationSeconds"] >= 0
    assert status["log"] == {"bytes": len(json.dumps(SUMMARY)) + 1, "chunks": 1, "truncated": False}
    assert "errorMessage" not in status
    running = next(c for c in status["conditions"] if c["type"] == "Running")
    assert running["status"] == "False"
    assert ok["metadata"]["labels"] == {
        "nodekeeper.io/policy": "ok",
        "nodekeeper.io/node": NODE,
        "nodekeeper.io/phase": "Succeeded",
    }
    assert stored_log(kubeconfig, namespace, "ok") == (json.dumps(SUMMARY) + "\n").encode()

    partial = wait_completed(kubectl, "partial", namespace)
    assert (partial["status"]["phase"], completed(partial)["reason"]) == (
        "PartiallyFailed",
        "PartiallyFailed",
    )
    assert partial["status"]["errorMessage"] == "/etc/x: permission denied"

    password = wait_completed(kubectl, "password", namespace)
    assert (password["status"]["phase"], completed(password)["reason"]) == (
        "Failed",
        "WrongPassword",
    )
    assert password["status"]["exitCode"] == 12
    assert password["status"]["errorMessage"] == "Fatal: wrong password"

    slow = wait_completed(kubectl, "slow", namespace)
    assert (slow["status"]["phase"], completed(slow)["reason"]) == ("Failed", "Timeout")
    assert slow["status"]["exitCode"] == 137  # killed with SIGKILL at the timeout
    assert stored_log(kubeconfig, namespace, "slow") == b"begun\n"
    # Killed, not run to its end: its sleep would have taken 120 s (a bound, not a timing goal).
    assert slow["status"]["durationSeconds"] < 120

    # Every task container is gone once its log is stored.
    def no_containers() -> bool:
        return not engine.containers.list(
            all=True, filters={"label": f"nodekeeper.io/namespace={namespace}"}
        )

    eventually_sync(no_containers, what="task containers removed", seconds=30)
    assert events_of(kubectl, "ok", namespace) == ["Started", "Succeeded"]
    assert events_of(kubectl, "password", namespace) == ["Started", "WrongPassword"]

    failed = kubectl.run(
        "get", "br", "-n", namespace, "-l", "nodekeeper.io/phase=Failed", "-o", "name"
    )
    assert sorted(failed.stdout.split()) == [
        "backuprun.nodekeeper.io/password",
        "backuprun.nodekeeper.io/slow",
    ]


def test_a_5_mb_log_is_stored_in_chunks_and_comes_back_identical_and_goes_with_its_run(
    kubectl: Kubectl, backup_agent: AgentProcess, namespace: str, kubeconfig: str
) -> None:
    pad = "x" * 994
    script = f'for i in $(seq -w 1 5300); do echo "$i-{pad}"; done'
    kubectl.apply(task("big", namespace, script))
    run = wait_completed(kubectl, "big", namespace, timeout=120)
    expected = "".join(f"{i:04d}-{pad}\n" for i in range(1, 5301)).encode()
    assert run["status"]["phase"] == "Succeeded"
    assert run["status"]["log"]["bytes"] == len(expected)
    assert not run["status"]["log"]["truncated"]
    names = chunk_names(kubectl, "big", namespace)
    assert names == [f"big-log-{i:03d}" for i in range(run["status"]["log"]["chunks"])]
    assert len(names) >= 2
    chunk = kubectl.get("configmap", names[0], "-n", namespace)
    owner = chunk["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"], owner["blockOwnerDeletion"]) == (
        "BackupRun",
        run["metadata"]["uid"],
        True,
        True,
    )
    assert stored_log(kubeconfig, namespace, "big") == expected

    kubectl.run("delete", "br", "big", "-n", namespace, "--timeout=60s")
    eventually_sync(
        lambda: not chunk_names(kubectl, "big", namespace), what="chunks collected", seconds=60
    )


def test_chunks_left_from_a_longer_earlier_attempt_are_deleted(
    kubectl: Kubectl, backup_agent: AgentProcess, namespace: str, kubeconfig: str
) -> None:
    """A run whose log once took more chunks (an attempt before a restart) keeps only the new
    ones: the agent deletes the rest, the one path where it deletes a ConfigMap itself."""
    kubectl.apply(task("shorter", namespace, "echo short; sleep 3"))
    kubectl.run("wait", "--for=condition=Running", "br/shorter", "-n", namespace, "--timeout=60s")
    uid = kubectl.get("br", "shorter", "-n", namespace)["metadata"]["uid"]
    owner = {"apiVersion": "nodekeeper.io/v1alpha1", "kind": "BackupRun", "name": "shorter"}
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "shorter-log-005",
                "namespace": namespace,
                "labels": {"nodekeeper.io/backuprun": "shorter"},
                "annotations": {"nodekeeper.io/log-index": "5"},
                "ownerReferences": [{**owner, "uid": uid}],
            },
            "data": {"earlier": "attempt"},
        }
    )
    wait_completed(kubectl, "shorter", namespace)
    assert chunk_names(kubectl, "shorter", namespace) == ["shorter-log-000"]
    assert stored_log(kubeconfig, namespace, "shorter") == b"short\n"


def test_an_ingested_result_is_recorded_once(
    kubectl: Kubectl, backup_agent: AgentProcess, namespace: str, kubeconfig: str
) -> None:
    result = {
        "taskId": "ext-1",
        "status": "PartiallyFailed",
        "durationSeconds": 12.5,
        "snapshotId": "feedbeef",
        "errorMessage": "2 files unreadable",
        "log": "line one\nline two\n",
    }
    kubectl.apply(run_object("external", namespace, result=result))
    run = wait_completed(kubectl, "external", namespace)
    status = run["status"]
    assert (status["phase"], completed(run)["reason"]) == ("PartiallyFailed", "PartiallyFailed")
    assert (status["durationSeconds"], status["snapshotId"], status["errorMessage"]) == (
        12.5,
        "feedbeef",
        "2 files unreadable",
    )
    assert status["log"] == {"bytes": 18, "chunks": 1, "truncated": False}
    assert stored_log(kubeconfig, namespace, "external") == b"line one\nline two\n"

    # The same result again: applied again, and seen again by a restarted agent (resume).
    kubectl.apply(run_object("external", namespace, result=result))
    backup_agent.restart()

    def resumed_unchanged() -> bool:
        value = backup_agent.metric(
            "nodekeeper_status_writes_total", {"kind": "BackupRun", "outcome": "unchanged"}
        )
        return bool(value)

    eventually_sync(
        resumed_unchanged, what="the restarted agent to see the recorded result", seconds=30
    )
    after = kubectl.get("br", "external", "-n", namespace)
    assert after["metadata"]["resourceVersion"] == run["metadata"]["resourceVersion"]
    assert events_of(kubectl, "external", namespace) == ["PartiallyFailed"]


def test_ingest_writes_a_large_log_then_the_agent_records_it(
    kubectl: Kubectl, backup_agent: AgentProcess, namespace: str, kubeconfig: str
) -> None:
    log = b"".join(f"{i:07d} ingested line\n".encode() for i in range(300_000))  # 6.6 MB
    result = {"taskId": "ext-big", "status": "Succeeded", "durationSeconds": 3}

    async def ingest() -> None:
        api = client.api_client(client.load(Path(kubeconfig)))
        try:
            runs, logs = BackupRuns(api), RunLogs(ConfigMaps(api))
            for _ in range(2):  # twice: the second finds the run and changes nothing
                await commands.ingest(
                    runs,
                    logs,
                    namespace=namespace,
                    name="imported",
                    node=NODE,
                    policy="offsite",
                    task_type="backup",
                    result=result,
                    log=log,
                )
        finally:
            api.close()

    run_async(ingest())
    run = wait_completed(kubectl, "imported", namespace)
    assert run["status"]["phase"] == "Succeeded"
    assert run["status"]["log"]["bytes"] == len(log)
    assert stored_log(kubeconfig, namespace, "imported") == log


def test_an_invalid_result_is_refused_with_a_readable_reason(
    kubectl: Kubectl, backup_agent: AgentProcess, namespace: str
) -> None:
    bad = {"taskId": "x", "status": "Maybe", "durationSeconds": 1}
    refused = kubectl.apply(run_object("bad", namespace, result=bad), check=False)
    assert refused.returncode != 0
    assert "spec.result.status" in refused.stderr
    assert "Maybe" in refused.stderr


def test_history_limits_keep_the_newest_runs_per_policy_and_node(
    kubectl: Kubectl, backup_agent: AgentProcess, namespace: str
) -> None:
    for i in range(4):
        result = {"taskId": f"s{i}", "status": "Succeeded", "durationSeconds": 1}
        kubectl.apply(run_object(f"h-ok-{i}", namespace, policy="hist", result=result))
    for i in range(2):
        result = {"taskId": f"f{i}", "status": "Failed", "durationSeconds": 1}
        kubectl.apply(run_object(f"h-bad-{i}", namespace, policy="hist", result=result))
    other = {"taskId": "o", "status": "Succeeded", "durationSeconds": 1}
    kubectl.apply(run_object("other-policy", namespace, policy="weekly", result=other))

    def remaining() -> list[str] | None:
        found = kubectl.get("br", "-n", namespace)["items"]
        names = sorted(item["metadata"]["name"] for item in found)
        return names if len(names) == SUCCEEDED_LIMIT + FAILED_LIMIT + 1 else None

    assert eventually_sync(remaining, what="history limits applied", seconds=60) == [
        "h-bad-1",
        "h-ok-2",
        "h-ok-3",
        "other-policy",
    ]


def test_a_run_survives_an_agent_restart_and_is_never_started_twice(
    kubectl: Kubectl,
    backup_agent: AgentProcess,
    namespace: str,
    engine: docker.DockerClient,
    kubeconfig: str,
    agent_identity: AgentIdentity,
) -> None:
    agent_identity.grant_secrets(namespace)  # the chart's backupRuns.secretNamespaces
    kubectl.run(
        "create", "secret", "generic", "repo", "-n", namespace, "--from-literal=password=s3cret"
    )
    env = [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "repo", "key": "password"}}}]
    script = 'echo "before $PASSWORD"; sleep 4; echo after'
    kubectl.apply(task("resumed", namespace, script, env=env))
    kubectl.run("wait", "--for=condition=Running", "br/resumed", "-n", namespace, "--timeout=60s")
    assert backup_agent.stop() == 0  # mid-run: the container keeps running without an agent
    running = engine.containers.list(
        filters={"label": f"nodekeeper.io/namespace={namespace}", "status": "running"}
    )
    assert len(running) == 1
    backup_agent.start()

    run = wait_completed(kubectl, "resumed", namespace)
    assert run["status"]["phase"] == "Succeeded"
    assert stored_log(kubeconfig, namespace, "resumed") == b"before s3cret\nafter\n"
    assert events_of(kubectl, "resumed", namespace) == ["Started", "Succeeded"]

    # Finished: a restarted agent leaves it as it is.
    backup_agent.restart()
    kubectl.apply(task("after-restart", namespace, "true"))
    wait_completed(kubectl, "after-restart", namespace)
    again = kubectl.get("br", "resumed", "-n", namespace)
    assert again["metadata"]["resourceVersion"] == run["metadata"]["resourceVersion"]
    assert events_of(kubectl, "resumed", namespace) == ["Started", "Succeeded"]


def test_a_missing_secret_fails_the_run_with_a_reason(
    kubectl: Kubectl, backup_agent: AgentProcess, namespace: str, agent_identity: AgentIdentity
) -> None:
    agent_identity.grant_secrets(namespace)  # absent, not forbidden
    env = [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]
    kubectl.apply(task("nosecret", namespace, "true", env=env))
    run = wait_completed(kubectl, "nosecret", namespace)
    assert (run["status"]["phase"], completed(run)["reason"]) == ("Failed", "SecretNotFound")
    assert "absent" in run["status"]["errorMessage"]


def test_deleting_a_running_run_stops_its_task(
    kubectl: Kubectl, backup_agent: AgentProcess, namespace: str, engine: docker.DockerClient
) -> None:
    kubectl.apply(task("doomed", namespace, "sleep 300"))
    kubectl.run("wait", "--for=condition=Running", "br/doomed", "-n", namespace, "--timeout=60s")
    run = kubectl.get("br", "doomed", "-n", namespace)
    assert run["metadata"]["finalizers"] == ["nodekeeper.io/finalizer"]
    kubectl.run("delete", "br", "doomed", "-n", namespace, "--timeout=60s")
    assert not engine.containers.list(
        all=True, filters={"label": f"nodekeeper.io/backuprun-uid={run['metadata']['uid']}"}
    )


def test_metrics_count_runs_and_the_last_success_is_rebuilt_from_the_api(
    kubectl: Kubectl, backup_agent: AgentProcess, namespace: str, kubeconfig: str
) -> None:
    result = {"taskId": "m1", "status": "Succeeded", "durationSeconds": 4}
    kubectl.apply(run_object("counted", namespace, policy="metered", result=result))
    run = wait_completed(kubectl, "counted", namespace)
    ingested = {"task_type": "backup", "phase": "Succeeded", "source": "ingested"}
    assert (backup_agent.metric("nodekeeper_backup_runs_total", ingested) or 0) >= 1

    # A restarted agent shows the last success again: rebuilt from the BackupRuns.
    backup_agent.restart()
    last = backup_agent.metric(
        "nodekeeper_backup_last_success_timestamp_seconds",
        {"namespace": namespace, "policy": "metered"},
    )
    created = parse_seconds(run["metadata"]["creationTimestamp"])
    assert last == created
