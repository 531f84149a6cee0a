"""BackupRun tasks on the real Docker engine: exit codes, restic output, timeouts, logs."""

import json
import uuid
from collections.abc import AsyncIterator

import pytest

from nodekeeper.api.backuprun import BackupRunSpec
from nodekeeper.api.names import LABEL_BACKUPRUN_UID, LABEL_MANAGED
from nodekeeper.api.refs import ObjectRef
from nodekeeper.backups.tasks import Ending, TaskRunner, TaskStartError
from nodekeeper.kube.secrets import SecretKeyMissing
from nodekeeper.runtime.containers import Containers
from nodekeeper.runtime.logstream import ContainerLogs
from tests.integration.conftest import TEST_IMAGE

pytestmark = pytest.mark.integration

SUMMARY = {
    "message_type": "summary",
    "files_new": 2,
    "files_changed": 1,
    "data_added": 2048,
    "total_bytes_processed": 4096,
    "snapshot_id": "abc123",
}
WRONG_PASSWORD = {"message_type": "exit_error", "code": 12, "message": "Fatal: wrong password"}


class FakeSecrets:
    def __init__(self, values: dict[tuple[str, str], str]) -> None:
        self.values = values

    async def value(self, namespace: str, name: str, key: str) -> str:
        try:
            return self.values[name, key]
        except KeyError:
            raise SecretKeyMissing(f"Secret {namespace}/{name} has no key {key!r}") from None


@pytest.fixture
async def runner(containers: Containers) -> AsyncIterator[TaskRunner]:
    secrets = FakeSecrets({("repo", "password"): "s3cret"})
    result = TaskRunner(containers, ContainerLogs(containers.client), secrets, poll_seconds=0.1)
    yield result
    for state in await containers.find({LABEL_MANAGED: "true"}):
        if state.labels.get(LABEL_BACKUPRUN_UID, "").startswith(RUN_PREFIX):
            await containers.remove(state.id)


RUN_PREFIX = f"it-{uuid.uuid4().hex[:8]}"


def task(script: str, **spec: object) -> tuple[ObjectRef, BackupRunSpec]:
    ref = ObjectRef(uid=f"{RUN_PREFIX}-{uuid.uuid4().hex[:8]}", namespace="it", name="run")
    body = {
        "nodeName": "n",
        "policy": "daily",
        "taskType": "backup",
        "image": TEST_IMAGE,
        "command": ["/bin/sh", "-c"],
        "args": [script],
        **spec,
    }
    return ref, BackupRunSpec.model_validate(body)


async def run_to_end(runner: TaskRunner, script: str, **spec: object) -> Ending:
    ref, parsed = task(script, **spec)
    try:
        state = await runner.start(ref, parsed)
        assert state.labels[LABEL_BACKUPRUN_UID] == ref.uid
        ending = await runner.follow(state, timeout_seconds=parsed.timeoutSeconds)
        assert ending is not None
        return ending
    finally:
        await runner.remove_all(ref)


def printing(*messages: object, exit_code: int) -> str:
    echoes = "; ".join(f"echo '{json.dumps(m)}'" for m in messages)
    return f"echo starting; {echoes}; exit {exit_code}"


async def test_exit_0_succeeds_with_the_summary(runner: TaskRunner) -> None:
    ending = await run_to_end(runner, printing({"message_type": "status"}, SUMMARY, exit_code=0))
    assert (ending.outcome.phase, ending.outcome.reason, ending.exit_code) == (
        "Succeeded",
        "Succeeded",
        0,
    )
    assert ending.report.snapshot_id == "abc123"
    assert ending.report.summary is not None
    assert ending.report.summary.as_status()["dataAddedBytes"] == 2048
    assert ending.log.startswith(b"starting\n")
    assert ending.duration_seconds >= 0


async def test_exit_3_is_partially_failed(runner: TaskRunner) -> None:
    error = {"message_type": "error", "error": {"message": "permission denied"}, "item": "/x"}
    ending = await run_to_end(runner, printing(error, SUMMARY, exit_code=3))
    assert (ending.outcome.phase, ending.outcome.reason, ending.exit_code) == (
        "PartiallyFailed",
        "PartiallyFailed",
        3,
    )
    assert ending.report.error_message == "/x: permission denied"
    assert ending.report.snapshot_id == "abc123"


async def test_exit_12_is_a_wrong_password_with_restics_message(runner: TaskRunner) -> None:
    ending = await run_to_end(runner, printing(WRONG_PASSWORD, exit_code=12) + " >&2")
    assert (ending.outcome.phase, ending.outcome.reason, ending.exit_code) == (
        "Failed",
        "WrongPassword",
        12,
    )


async def test_a_task_past_its_timeout_is_killed(runner: TaskRunner) -> None:
    ref, spec = task("echo begun; sleep 60", timeoutSeconds=1)
    state = await runner.start(ref, spec)
    ending = await runner.follow(state, timeout_seconds=1)
    assert ending is not None
    assert (ending.outcome.phase, ending.outcome.reason, ending.exit_code) == (
        "Failed",
        "Timeout",
        137,  # killed (SIGKILL) before its log was read
    )
    assert ending.log == b"begun\n"
    # Killed, not run to its end: its sleep would have taken 60 s (a bound, not a timing goal).
    assert ending.duration_seconds < 60
    assert await runner.remove(ending.container_id)  # removal kills it
    assert await runner.find(ref) is None


async def test_env_values_and_secret_references_reach_the_task(runner: TaskRunner) -> None:
    env = [
        {"name": "PLAIN", "value": "p"},
        {
            "name": "RESTIC_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "repo", "key": "password"}},
        },
    ]
    ending = await run_to_end(runner, 'echo "$PLAIN $RESTIC_PASSWORD"', env=env)
    assert ending.log == b"p s3cret\n"


async def test_a_missing_secret_refuses_to_start(runner: TaskRunner) -> None:
    env = [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "repo", "key": "nope"}}}]
    ref, spec = task("true", env=env)
    with pytest.raises(TaskStartError) as caught:
        await runner.start(ref, spec)
    assert caught.value.reason == "SecretNotFound"
    assert await runner.find(ref) is None


async def test_a_missing_image_refuses_to_start(runner: TaskRunner) -> None:
    ref, spec = task("true", image="nodekeeper-test/absent:1")
    with pytest.raises(TaskStartError) as caught:
        await runner.start(ref, spec)
    assert caught.value.reason == "ImageNotFound"


async def test_both_streams_are_read_in_order(runner: TaskRunner) -> None:
    script = "for i in 1 2 3; do echo out$i; sleep 0.05; echo err$i >&2; sleep 0.05; done"
    ending = await run_to_end(runner, script)
    expected = "".join(f"out{i}\nerr{i}\n" for i in range(1, 4)).encode()
    assert ending.log == expected


async def test_a_long_line_and_a_missing_final_newline_come_back_exactly(
    runner: TaskRunner,
) -> None:
    script = "head -c 40000 /dev/zero | tr '\\0' 'x'; echo; printf 'tail-without-newline'"
    ending = await run_to_end(runner, script)
    assert ending.log == b"x" * 40000 + b"\ntail-without-newline"


async def test_an_existing_container_is_followed_not_started_twice(runner: TaskRunner) -> None:
    ref, spec = task("sleep 0.5; echo done")
    first = await runner.start(ref, spec)
    try:
        again = await runner.find(ref)  # what an agent that restarted finds
        assert again is not None
        assert again.id == first.id
        ending = await runner.follow(again, timeout_seconds=None)
        assert ending is not None
        assert ending.log == b"done\n"
    finally:
        await runner.remove_all(ref)
