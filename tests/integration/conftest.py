"""Integration tests run against a real Docker engine; `make integration` starts one.

There is no skip here: a missing engine fails the run with the command that fixes it, so CI can
never pass while silently not testing Docker.
"""

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from nodekeeper.runtime.containers import Containers
from nodekeeper.runtime.errors import DockerUnavailable

TEST_IMAGE = os.environ.get("NODEKEEPER_TEST_IMAGE", "nodekeeper-test/busybox:latest")
DOCKER_HOST = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


@pytest.fixture
async def containers() -> AsyncIterator[Containers]:
    try:
        engine = Containers.connect(DOCKER_HOST)
        await engine.ping()
    except DockerUnavailable as e:
        pytest.fail(f"no Docker engine at {DOCKER_HOST} ({e}); run scripts/docker-up.sh")
    yield engine
    for state in await engine.find({"nodekeeper.io/test-run": RUN_ID}):
        await engine.remove(state.id)
    engine.close()


# Every container a test makes carries this label, so teardown removes exactly those.
RUN_ID = uuid.uuid4().hex[:12]


def unique(name: str) -> str:
    return f"nk-test-{name}-{uuid.uuid4().hex[:8]}"
