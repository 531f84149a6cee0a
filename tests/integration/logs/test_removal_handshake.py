"""The removal handshake with a real container: once ``LogPipeline.drain`` returns, removing the
container (which deletes its log) loses nothing, not even a last line without a newline.

The offline agent has no runtime to remove containers, so the pipeline runs in this process,
built by ``app.build.log_pipeline`` exactly as the agent builds it.
"""

import asyncio
from pathlib import Path

import pytest

from nodekeeper.app.build import log_pipeline
from nodekeeper.config import load
from nodekeeper.metrics import Metrics
from tests.integration.logs.conftest import RUN_PREFIX, DockerCli, numbers, stored_lines

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

LINES = 20_000


async def test_a_container_removed_after_drain_returns_has_every_line_stored(
    tmp_path: Path, docker: DockerCli
) -> None:
    settings = load(
        {
            "state_dir": tmp_path,
            "log_include": [f"name={RUN_PREFIX}-*"],
            "log_poll_seconds": 0.2,
        }
    )
    pipeline, store = log_pipeline(settings, Metrics(workload_phases=dict))
    running = asyncio.create_task(pipeline.run(), name="log pipeline")
    try:
        await asyncio.wait_for(pipeline.started.wait(), 30)
        # A burst, then a last line Docker stores without a newline (a partial record that
        # nothing will ever finish): drain must store it too.
        script = f"seq 1 {LINES} | sed 's/^/H out /'; printf 'the end, no newline'"
        name, container_id = await asyncio.to_thread(docker.run, "drain", script)
        assert await asyncio.to_thread(docker.wait, name) == 0

        assert await pipeline.drain(container_id, 30) is True
        await asyncio.to_thread(docker.remove, name)
        gone = not await asyncio.to_thread((settings.log_containers_dir / container_id).exists)
        assert gone, "docker rm -f left the container's directory"

        lines = await asyncio.to_thread(stored_lines, store.path, container_id)
        assert numbers(lines[:-1], "H", "stdout") == list(range(1, LINES + 1))
        assert lines[-1].log == "the end, no newline"
        assert not running.done()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        store.close()
