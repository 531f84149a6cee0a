"""The agent killed with SIGKILL mid-stream: nothing lost, nothing twice; what Docker deleted is
counted, exactly where the agent can know it.

What ``nodekeeper_log_lost_*`` can know (see ``Follower._count_lost``): a checkpoint names the
file being read and the newer files already seen, each with its final size once it was rotated
away. When the agent comes back and one of those files is gone:

- its final size was known (it had been rotated before the kill): the unread rest,
  ``final_size - offset``, is added to ``lost_bytes`` -- exact;
- it was still the live file at the kill (size unknown): ``lost_files`` goes up by one; how many
  bytes were written to it after the kill is unknowable.

Files Docker created *and* deleted while the agent was down were never seen by it: nothing can
count them. So ``lost_bytes`` is exact only for the first case, which the last test sets up on
purpose (a fake containers directory, where the test itself plays dockerd's rotation).
"""

import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from nodekeeper.api.times import rfc3339_ns
from nodekeeper.logs.records import Checkpoint
from tests.integration.logs.conftest import (
    RUN_PREFIX,
    DockerCli,
    LogAgent,
    fake_container,
    new_container_id,
    numbers,
    writer_script,
)
from tests.support.waiting import eventually_sync

pytestmark = pytest.mark.integration

KILLS = 10


@pytest.mark.timeout(180)
def test_ten_sigkills_while_containers_write_and_rotate_lose_and_duplicate_nothing(
    agent: LogAgent, docker: DockerCli
) -> None:
    # ~1,500 lines/s (~180 KB/s) per container into 200 KB files, 5 kept: a file is rotated
    # about every 1.1 s and deleted ~4.4 s later, longer than the agent is ever down here
    # (< 2 s), so no byte is really lost.
    per_stream, batches = 75, 300
    tags = ("K0", "K1")
    started = [
        (
            tag,
            *docker.run(
                "kill",
                writer_script(
                    tag=tag, per_stream=per_stream, batches=batches, pause_us=100_000, pad=40
                ),
                *("--log-opt", "max-size=200k", "--log-opt", "max-file=5"),
            ),
        )
        for tag in tags
    ]
    chance = random.Random(4)
    mid_rotation = 0  # checkpoints left inside a rotated file, or naming newer files
    renamed = 0  # checkpointed files found under a new name (.1, .2) after the restart
    for _ in range(KILLS):
        time.sleep(chance.uniform(0.3, 1.2))  # let it read, commit and see rotations
        agent.kill()
        checkpoints = {cid: agent.checkpoint(cid) for _, _, cid in started}
        mid_rotation += sum(
            1 for c in checkpoints.values() if c and (c.newer or c.position.final_size is not None)
        )

        # Restart only once Docker has renamed a checkpointed file: resuming must find it as .1.
        eventually_sync(
            lambda: bool(_rotated(docker, checkpoints)),  # noqa: B023 (called right here)
            what="a rotation while the agent is down",
            seconds=10,
            every=0.02,
        )
        renamed += len(_rotated(docker, checkpoints))
        agent.start()
        # Resuming found every checkpointed file again (lost counts are taken at start).
        metrics = agent.metrics()
        assert metrics["nodekeeper_log_lost_bytes_total"] == 0, agent.log_tail()
        assert metrics["nodekeeper_log_lost_files_total"] == 0, agent.log_tail()
    assert agent.starts == KILLS + 1

    total = per_stream * batches
    for tag, name, container_id in started:
        assert docker.wait(name) == 0
        files = docker.log_files(container_id)
        assert any(path.name.endswith(".1") for path in files), "the container did not rotate"
        lines = agent.wait_drained(container_id)
        for stream in ("stdout", "stderr"):
            assert numbers(lines, tag, stream) == list(range(1, total + 1)), stream
    assert agent.metric("nodekeeper_log_lost_bytes_total") == 0
    print(
        f"{KILLS} kills: {renamed} checkpointed files resumed under a new name,"
        f" {mid_rotation} checkpoints left mid-rotation"
    )


def _rotated(docker: DockerCli, checkpoints: dict[str, Checkpoint | None]) -> list[str]:
    """Containers whose checkpointed file is no longer the live one."""
    return [
        container_id
        for container_id, checkpoint in checkpoints.items()
        if checkpoint is not None
        and _inode(docker.live_log(container_id)) != checkpoint.position.inode
    ]


def _inode(path: Path) -> int:
    """The inode at `path`, 0 when nothing is there (between dockerd's rename and create)."""
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return 0


@pytest.mark.timeout(120)
def test_data_docker_deletes_while_the_agent_is_down_is_counted_and_the_rest_stays_in_order(
    agent: LogAgent, docker: DockerCli, tmp_path: Path
) -> None:
    # 1,000 lines; once the agent stored them and was killed, ~3.5 MB through 2 files of 100 KB:
    # Docker deletes the file the agent was reading and every file after it but the last two.
    # The burst waits for the test's go (a file in a bind-mounted folder), not for a time: the
    # agent must be down before it begins, however slow the machine.
    signals = tmp_path / "signals"
    signals.mkdir()
    script = (
        writer_script(tag="L", per_stream=500, batches=1, pause_us=0, pad=40)
        + "; until [ -e /signals/burst ]; do usleep 20000; done; "
        + writer_script(tag="M", per_stream=15_000, batches=1, pause_us=0, pad=40)
    )
    name, container_id = docker.run(
        "lost",
        script,
        *("--log-opt", "max-size=100k", "--log-opt", "max-file=2"),
        *("-v", f"{signals}:/signals:ro"),
    )
    eventually_sync(
        lambda: len(agent.lines(container_id)) >= 1000,
        what="the first 1,000 lines stored",
        seconds=30,
    )
    agent.kill()
    (signals / "burst").touch()
    assert docker.wait(name) == 0
    agent.start()

    lines = agent.wait_drained(container_id)
    metrics = agent.metrics()
    # The live file at the kill had no known final size: one lost file, bytes unknowable.
    assert metrics["nodekeeper_log_lost_files_total"] >= 1
    assert (
        metrics["nodekeeper_log_lost_bytes_total"] + metrics["nodekeeper_log_lost_files_total"] > 0
    )

    first = [line for line in lines if line.log.startswith("L ")]
    burst = [line for line in lines if line.log.startswith("M ")]
    assert burst, "the tail Docker kept was not stored"
    for stream in ("stdout", "stderr"):
        assert numbers(first, "L", stream) == list(range(1, 501))
        # What survived of the burst is the tail Docker kept: unique, in order, to the end.
        # Which streams it holds depends on how dockerd interleaved them (awk buffers stdout,
        # not stderr): a stream may have ended before the kept 200 KB began.
        kept = numbers(burst, "M", stream)
        if kept:
            assert kept == list(range(kept[0], 15_001)), stream
    assert min(numbers(burst, "M", "stdout") + numbers(burst, "M", "stderr")) > 1, (
        "nothing was lost: the test did not set up a loss"
    )


def _record(number: int, ns: int) -> bytes:
    text = f"F out {number} {'q' * 60}\n"
    return orjson.dumps({"log": text, "stream": "stdout", "time": rfc3339_ns(ns)}) + b"\n"


@pytest.mark.timeout(120)
def test_lost_bytes_are_exact_when_the_deleted_file_had_been_rotated_before_the_kill(
    agent_factory: Callable[..., LogAgent], tmp_path: Path
) -> None:
    root = tmp_path / "containers"
    container_id = new_container_id()
    log = fake_container(root, container_id, f"{RUN_PREFIX}-exact", max_file=2)
    # dockerd's state after a rotation: a big rotated file (.1) and a small live one.
    ns = time.time_ns()
    sizes: list[int] = []
    with open(f"{log}.1", "wb") as rotated:
        for number in range(1, 400_001):
            record = _record(number, ns + number)
            sizes.append(len(record))
            rotated.write(record)
    with open(log, "wb") as live:
        for number in range(400_001, 400_101):
            live.write(_record(number, ns + number))
    rotated_size = sum(sizes)

    agent = agent_factory("--log-containers-dir", str(root))

    def reading_the_rotated_file() -> bool:
        checkpoint = agent.checkpoint(container_id)
        return checkpoint is not None and checkpoint.position.offset > 0

    eventually_sync(
        reading_the_rotated_file,
        what="a first checkpoint in the rotated file",
        seconds=30,
        every=0.01,
    )
    agent.kill()
    checkpoint = agent.checkpoint(container_id)
    assert checkpoint is not None
    assert checkpoint.position.final_size == rotated_size, "the .1 file was not known as rotated"
    offset = checkpoint.position.offset
    assert 0 < offset < rotated_size, "the agent read all of .1 before the kill: make it bigger"

    # dockerd rotates once more while the agent is down: .1 is deleted, live becomes .1.
    os.unlink(f"{log}.1")
    shutil.move(log, f"{log}.1")
    with open(log, "wb") as live:
        live.write(_record(400_101, ns + 400_101))
    agent.start()

    lines = agent.wait_drained(container_id)
    lost = agent.metric("nodekeeper_log_lost_bytes_total")
    assert lost == rotated_size - offset
    assert agent.metric("nodekeeper_log_lost_files_total") == 0
    got = numbers(lines, "F", "stdout")
    read = [n for n in got if n <= 400_000]
    assert read == list(range(1, len(read) + 1))
    assert got[len(read) :] == list(range(400_001, 400_102))
    # Stored bytes of the rotated file + lost bytes account for every byte it held.
    assert sum(sizes[: len(read)]) + lost == rotated_size
