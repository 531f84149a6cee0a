"""The removal handshake with a real container: once ``LogPipeline.drain`` returns, removing the
container (which deletes its log) loses nothing, not even a last line without a newline.

The offline agent has no runtime to remove containers, so the pipeline runs in this process,
built by ``app.build`` exactly as the agent builds it: alone (``log_pipeline``), and with the
runtime whose removals it gates (``agent_parts``).
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import kubernetes.client
import pytest

from nodekeeper.api.names import LABEL_NAME, LABEL_NAMESPACE, LABEL_WORKLOAD_UID
from nodekeeper.app.build import AgentParts, agent_parts, log_pipeline
from nodekeeper.config import load
from nodekeeper.metrics import Metrics
from nodekeeper.runtime.containers import ContainerSpec
from nodekeeper.workloads.gc import GarbageCollector
from tests.integration.conftest import DOCKER_HOST, TEST_IMAGE
from tests.integration.logs.conftest import RUN_PREFIX, DockerCli, numbers, stored_lines
from tests.support.fakes import FakeObjects

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

LINES = 20_000
NODE = "node-a"


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


# --- the handshake as the agent wires it: app.build.agent_parts gates Containers.remove on
# LogPipeline.drain. A container wrote its last lines and exited while the agent was down (an
# upgrade, a crash); the agent starts, and the container is removed at once, by its Workload's
# deletion (the finalizer handler) or by garbage collection, before the log pipeline has opened
# its log: the removal waits for the pipeline, and nothing the container wrote is lost. (Once the
# pipeline holds a log open, deleting the file loses nothing: the gate matters before that.)


@contextlib.asynccontextmanager
async def built_agent(tmp_path: Path) -> AsyncIterator[AgentParts]:
    """The agent's parts as ``nodekeeper run`` builds them; none running yet."""
    settings = load(
        {
            "node_name": NODE,
            "state_dir": tmp_path,
            "docker_host": DOCKER_HOST,
            "log_include": [f"name={RUN_PREFIX}-*"],
            "log_poll_seconds": 0.2,
        }
    )
    # Nothing here calls the API server: only the parts' wiring is used.
    api = kubernetes.client.ApiClient(kubernetes.client.Configuration(host="http://127.0.0.1:9"))
    parts = await agent_parts(settings, api, readiness=lambda: None)
    try:
        yield parts
    finally:
        for state in await parts.containers.find({LABEL_WORKLOAD_UID: RUN_PREFIX}):
            await parts.containers.remove(state.id)
        parts.close()
        api.close()  # type: ignore[no-untyped-call]


async def a_workload_container_that_wrote_its_last_lines(parts: AgentParts, label: str) -> str:
    """A Workload's container that wrote LINES lines and exited; its id, once it has exited."""
    name = f"{RUN_PREFIX}-{label}-{uuid.uuid4().hex[:6]}"
    script = f"seq 1 {LINES} | sed 's/^/H out /'"
    state = await parts.containers.run(
        ContainerSpec(
            name=name,
            image=TEST_IMAGE,
            command=["sh", "-c", script],
            labels={
                LABEL_WORKLOAD_UID: RUN_PREFIX,
                LABEL_NAMESPACE: "default",
                LABEL_NAME: name,
            },
        )
    )
    exited = await asyncio.to_thread(parts.containers.client.api.wait, state.id, timeout=60)
    assert exited["StatusCode"] == 0
    return state.id


async def removed_as_the_agent_starts(parts: AgentParts, removal: Awaitable[object]) -> None:
    """Run ``removal``, and start the log pipeline once the removal is done or waits for it."""
    gate = parts.containers.removal_gate
    at_gate = asyncio.Event()
    if gate is not None:  # watched, not replaced: the build's own gate decides

        async def watched(container_id: str) -> object:
            at_gate.set()
            return await gate(container_id)

        parts.containers.removal_gate = watched
    removing = asyncio.ensure_future(removal)
    waiting = asyncio.create_task(at_gate.wait())
    await asyncio.wait([removing, waiting], return_when=asyncio.FIRST_COMPLETED, timeout=60)
    waiting.cancel()
    pipeline = asyncio.create_task(dict(parts.background)["log pipeline"](), name="log pipeline")
    try:
        await asyncio.wait_for(removing, 60)
        assert not pipeline.done()
    finally:
        pipeline.cancel()
        await asyncio.gather(pipeline, return_exceptions=True)


async def test_a_deleted_workloads_container_is_removed_after_its_last_line_is_stored(
    tmp_path: Path,
) -> None:
    async with built_agent(tmp_path) as parts:
        container_id = await a_workload_container_that_wrote_its_last_lines(parts, "deleted")
        body = {"metadata": {"namespace": "default", "name": "w", "uid": RUN_PREFIX}}
        # What the finalizer handler does.
        await removed_as_the_agent_starts(parts, parts.context.workloads.remove(body))

        assert await parts.containers.find({LABEL_WORKLOAD_UID: RUN_PREFIX}) == []
        lines = await asyncio.to_thread(stored_lines, parts.store.path, container_id)
        assert numbers(lines, "H", "stdout") == list(range(1, LINES + 1))


async def test_an_orphan_collected_at_once_is_removed_after_its_last_line_is_stored(
    tmp_path: Path,
) -> None:
    async with built_agent(tmp_path) as parts:
        container_id = await a_workload_container_that_wrote_its_last_lines(parts, "orphan")
        collector = GarbageCollector(
            containers=parts.containers,
            objects=FakeObjects(),  # its Workload is gone
            node_name=NODE,
            metrics=parts.metrics,
            grace_seconds=0,
        )
        await removed_as_the_agent_starts(parts, collector.collect())

        assert await parts.containers.find({LABEL_WORKLOAD_UID: RUN_PREFIX}) == []
        lines = await asyncio.to_thread(stored_lines, parts.store.path, container_id)
        assert numbers(lines, "H", "stdout") == list(range(1, LINES + 1))
