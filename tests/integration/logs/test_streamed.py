"""Containers whose log driver keeps no json-file (here ``local``) are read through the Docker
API's log stream into the same store: every line once, long lines merged, across a restart of
the pipeline, and drained before removal; the running agent stores them and `nodekeeper logs -f`
prints them as they arrive."""

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nodekeeper.app.build import log_pipeline
from nodekeeper.config import load
from nodekeeper.metrics import Metrics
from nodekeeper.runtime.containers import Containers
from nodekeeper.runtime.logstream import ContainerLogs
from tests.integration.conftest import DOCKER_HOST
from tests.integration.logs.conftest import RUN_PREFIX, DockerCli, LogAgent, stored_lines
from tests.support.waiting import eventually_sync

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

LINES = 5000
LONG = 40_000  # Docker splits it into 16 KiB partial entries


async def test_a_local_driver_container_is_stored_once_across_a_restart(
    tmp_path: Path, docker: DockerCli
) -> None:
    settings = load(
        {"state_dir": tmp_path, "log_include": [f"name={RUN_PREFIX}-*"], "log_poll_seconds": 0.2}
    )
    engine = await asyncio.to_thread(Containers.connect, DOCKER_HOST)
    # First half, a long line, a pause during which the pipeline is restarted, second half.
    script = (
        f"seq 1 {LINES} | sed 's/^/L out /'; "
        f"yes x | head -n {LONG} | tr -d '\\n'; echo; "
        f"sleep 4; seq {LINES + 1} {2 * LINES} | sed 's/^/L out /'"
    )
    container_id = ""
    try:
        for round_ in range(2):
            pipeline, store = log_pipeline(
                settings, Metrics(workload_phases=dict), ContainerLogs(engine.client)
            )
            running = asyncio.create_task(pipeline.run(), name="log pipeline")
            try:
                await asyncio.wait_for(pipeline.started.wait(), 30)
                if round_ == 0:
                    name, container_id = await asyncio.to_thread(
                        docker.run, "streamed", script, "--log-driver", "local"
                    )
                    await asyncio.sleep(2)  # the first half is in; then the pipeline stops
                else:
                    assert await asyncio.to_thread(docker.wait, name) == 0
                    assert await pipeline.drain(container_id, 30)
                    lines = await asyncio.to_thread(stored_lines, store.path, container_id)
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                store.close()
    finally:
        engine.close()

    counted = [int(line.log.split()[2]) for line in lines if line.log.startswith("L out ")]
    assert counted == list(range(1, 2 * LINES + 1))
    long_lines = [line for line in lines if line.log.startswith("x")]
    assert [len(line.log) for line in long_lines] == [LONG + 1]  # one line, its newline kept
    assert "merged" in repr(long_lines[0].flags).lower()


def test_the_cli_follows_a_local_driver_container_as_its_lines_arrive(
    agent: LogAgent, docker: DockerCli
) -> None:
    """`nodekeeper logs -f` prints the lines the running agent read through the Docker API.

    journald is what the issue asks for, but dockerd here has no journal ("journald is not
    enabled on this host"); ``local`` is the other driver without a json-file and takes the same
    path (the Docker API's log stream)."""
    # A first batch, then the rest once the test says so (`docker exec ... touch`), so the
    # second batch arrives while `logs -f` is already following.
    script = (
        "seq 1 100 | sed 's/^/first /'; "
        "while [ ! -e /tmp/go ]; do sleep 0.1; done; "
        "seq 1 100 | sed 's/^/second /'; sleep 300"
    )
    name, container_id = docker.run("followed", script, "--log-driver", "local")
    eventually_sync(
        lambda: len(agent.lines(container_id)) == 100, what="the first batch stored", seconds=60
    )
    command = [
        *(sys.executable, "-m", "nodekeeper.cli", "logs", "--state-dir", str(agent.state_dir)),
        *("-c", name, "-f", "-o", "raw"),
    ]
    printed: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as follower:
        assert follower.stdout is not None
        output = follower.stdout

        def read() -> None:
            for line in iter(output.readline, b""):
                printed.append(line.decode())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            first = [f"first {n}\n" for n in range(1, 101)]
            eventually_sync(lambda: printed == first, what="the first batch printed", seconds=30)

            subprocess.run(["docker", "exec", name, "touch", "/tmp/go"], check=True, timeout=30)
            second = [f"second {n}\n" for n in range(1, 101)]
            eventually_sync(
                lambda: printed == first + second, what="the second batch printed", seconds=30
            )
            assert follower.poll() is None  # still following
        finally:
            follower.terminate()
            follower.wait(timeout=10)
            reader.join(timeout=10)
