"""Containers whose log driver keeps no json-file (here ``local``) are read through the Docker
API's log stream into the same store: every line once, long lines merged, across a restart of
the pipeline, and drained before removal."""

import asyncio
from pathlib import Path

import pytest

from nodekeeper.app.build import log_pipeline
from nodekeeper.config import load
from nodekeeper.metrics import Metrics
from nodekeeper.runtime.containers import Containers
from nodekeeper.runtime.logstream import ContainerLogs
from tests.integration.conftest import DOCKER_HOST
from tests.integration.logs.conftest import RUN_PREFIX, DockerCli, stored_lines

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
