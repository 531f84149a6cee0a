"""The Docker runtime on a real engine: containers run, are found by label, leave nothing behind."""

import asyncio
from pathlib import Path

import pytest

from nodekeeper.api.names import LABEL_MANAGED
from nodekeeper.runtime.containers import Containers, ContainerSpec
from nodekeeper.runtime.errors import ContainerCreateFailed, ImageNotFound
from tests.integration.conftest import RUN_ID, TEST_IMAGE, unique

LABELS = {"nodekeeper.io/test-run": RUN_ID}


async def test_a_container_runs_and_its_output_is_in_its_json_log(containers: Containers) -> None:
    spec = ContainerSpec(
        name=unique("echo"),
        image=TEST_IMAGE,
        command=["/bin/sh", "-c"],
        args=["echo hello from $WHO; exit 3"],
        env={"WHO": "nodekeeper"},
        labels={**LABELS, "nodekeeper.io/workload-uid": "u-1"},
        memory_bytes=64 * 2**20,
        nano_cpus=500_000_000,
    )
    started = await containers.run(spec)
    assert started.labels[LABEL_MANAGED] == "true"

    ended = await containers.wait(started.id, deadline_seconds=30)
    assert (ended.status, ended.exit_code, ended.oom_killed) == ("exited", 3, False)
    assert ended.log_path is not None
    log = await asyncio.to_thread(Path(ended.log_path).read_text)
    assert '"log":"hello from nodekeeper\\n"' in log
    assert '"stream":"stdout"' in log

    found = await containers.find({"nodekeeper.io/workload-uid": "u-1", **LABELS})
    assert [state.id for state in found] == [started.id]


async def test_limits_are_applied_by_docker(containers: Containers) -> None:
    spec = ContainerSpec(
        name=unique("limits"),
        image=TEST_IMAGE,
        command=["/bin/sleep"],
        args=["30"],
        labels=LABELS,
        memory_bytes=32 * 2**20,
        nano_cpus=250_000_000,
    )
    state = await containers.run(spec)
    try:
        attrs = await asyncio.to_thread(containers._client.api.inspect_container, state.id)
        assert attrs["HostConfig"]["Memory"] == 32 * 2**20
        assert attrs["HostConfig"]["NanoCpus"] == 250_000_000
        assert attrs["HostConfig"]["LogConfig"]["Type"] == "json-file"
    finally:
        assert await containers.remove(state.id) is True
    assert await containers.remove(state.id) is False


async def test_a_missing_image_is_image_not_found_and_leaves_nothing(
    containers: Containers,
) -> None:
    name = unique("missing")
    with pytest.raises(ImageNotFound) as caught:
        await containers.run(
            ContainerSpec(name=name, image="nodekeeper-test/absent:1", labels=LABELS)
        )
    assert caught.value.code == "ImageNotFound"
    assert await containers.find({**LABELS}) == []


async def test_a_start_failure_leaves_no_half_made_container(containers: Containers) -> None:
    # Docker creates this container, then fails to start it: the executable does not exist.
    spec = ContainerSpec(
        name=unique("nostart"), image=TEST_IMAGE, command=["/no/such/binary"], labels=LABELS
    )
    with pytest.raises(ContainerCreateFailed, match="no/such/binary"):
        await containers.run(spec)
    assert await containers.find(LABELS) == []


async def test_a_container_names_the_node_whose_agent_made_it(containers: Containers) -> None:
    containers.node_name = "node-a"
    started = await containers.run(
        ContainerSpec(name=unique("node"), image=TEST_IMAGE, command=["true"], labels=LABELS)
    )
    assert started.labels["nodekeeper.io/node"] == "node-a"
    assert containers.ours(started.labels)
    assert not containers.ours({**started.labels, "nodekeeper.io/node": "node-b"})
    assert containers.ours({})  # made before the label existed: still ours to collect
