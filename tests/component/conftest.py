"""kopf handlers against the kmock API emulator (PyPI `kmock`, by kopf's author).

The Docker side is the real engine (`scripts/docker-up.sh` starts one), so a Workload handled
here runs a real container; only the API server is emulated.

kmock's gaps, so nobody reads more into these tests than they prove (e2e covers each on a real
API server): no resourceVersion, no status-subresource semantics (a status PATCH merges into the
object), no label or field selectors (other nodes' objects DO arrive here, which is how the
agent's own filtering is tested), no schema validation, no server-side apply field ownership
(an apply merges like any patch), and /version says v1.26 unless a test overrides it.
"""

import asyncio
import contextlib
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import kmock
import kopf
import kubernetes.client
import pytest

from nodekeeper.api import GROUP, VERSION, backuprun, workload
from nodekeeper.api.names import LABEL_WORKLOAD_UID
from nodekeeper.app.build import handler_context
from nodekeeper.handlers import operator
from nodekeeper.kube.client import Credentials
from nodekeeper.kube.status import ConditionChange, StatusWriter
from nodekeeper.metrics import Metrics
from nodekeeper.runtime.containers import Containers
from nodekeeper.runtime.errors import DockerUnavailable
from nodekeeper.runtime.events import ContainerEvents
from nodekeeper.workloads.images import ImagePolicy

NODE = "node-a"
DOCKER_HOST = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
# Workload uids made by the running test; teardown removes their real containers.
CREATED_UIDS: set[str] = set()
TEST_IMAGE = os.environ.get("NODEKEEPER_TEST_IMAGE", "nodekeeper-test/busybox:latest")
WORKLOADS = kmock.resource(group=GROUP, version=VERSION, plural=workload.PLURAL)
BACKUPRUNS = kmock.resource(group=GROUP, version=VERSION, plural=backuprun.PLURAL)


class NotifyingWriter(StatusWriter):
    """A real status writer that also tells the test each time a handler called it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()

    async def apply(
        self,
        body: Mapping[str, Any],
        *,
        fields: Mapping[str, Any],
        conditions: Sequence[ConditionChange] = (),
    ) -> bool:
        written = await super().apply(body, fields=fields, conditions=conditions)
        await self.calls.put((body["metadata"]["name"], written))
        return written

    async def next_call(self, seconds: float = 15) -> tuple[str, bool]:
        return await asyncio.wait_for(self.calls.get(), seconds)


@dataclasses.dataclass
class Agent:
    metrics: Metrics
    workloads: NotifyingWriter
    workloads_runtime: NotifyingWriter
    backupruns: NotifyingWriter
    containers: Containers


@pytest.fixture
def emulator(kmock: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    # kopf waits for these in discovery before it starts any watch.
    everything = {"get", "list", "watch", "create", "patch", "delete"}
    kmock.resources[kmock.resource(group="", version="v1", plural="namespaces")] = (
        kmock.ResourceInfo(kind="Namespace", namespaced=False, verbs=everything)
    )
    kmock.resources[kmock.resource(group="", version="v1", plural="events")] = kmock.ResourceInfo(
        kind="Event", namespaced=True, verbs=everything
    )
    crds = kmock.resource(
        group="apiextensions.k8s.io", version="v1", plural="customresourcedefinitions"
    )
    kmock.resources[crds] = kmock.ResourceInfo(
        kind="CustomResourceDefinition", namespaced=False, verbs=everything
    )
    for resource, kind in ((WORKLOADS, workload.KIND), (BACKUPRUNS, backuprun.KIND)):
        kmock.resources[resource] = kmock.ResourceInfo(
            kind=kind,
            namespaced=True,
            verbs={"get", "list", "watch", "patch", "create", "delete"},
            subresources={"status"},
        )
    return kmock


@pytest.fixture
async def agent(emulator: kmock.KubernetesEmulator) -> AsyncIterator[Agent]:
    """The agent's kopf side, wired by app's own handler_context, against the emulator."""
    server = str(emulator.url).rstrip("/")
    api = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=server))
    metrics = Metrics()

    try:
        containers = Containers.connect(DOCKER_HOST)
        await containers.ping()
    except DockerUnavailable as e:
        pytest.fail(f"no Docker engine at {DOCKER_HOST} ({e}); run scripts/docker-up.sh")

    events = ContainerEvents(containers.client, key_label=LABEL_WORKLOAD_UID)
    events_task = asyncio.create_task(events.run())
    context = handler_context(
        api,
        node_name=NODE,
        metrics=metrics,
        containers=containers,
        events=events,
        image_policy=ImagePolicy({"locked": ["registry.example/*"], "*": ["nodekeeper-test/*"]}),
        writer=NotifyingWriter,
    )
    status = context.workloads.status

    def notifying(writer: object) -> NotifyingWriter:
        assert isinstance(writer, NotifyingWriter)
        return writer

    result = Agent(
        metrics=metrics,
        workloads=notifying(status.admission_writer),
        workloads_runtime=notifying(status.runtime_writer),
        backupruns=notifying(context.backuprun_status),
        containers=containers,
    )
    credentials = Credentials(
        server=server,
        ca_path=None,
        insecure=True,
        certificate_path=None,
        private_key_path=None,
        scheme=None,
        token=None,
    )
    settings = operator.settings(NODE, shutdown_timeout=5)
    settings.watching.connect_timeout = 5
    settings.watching.server_timeout = 5
    stop = asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=operator.registry(lambda: credentials),
            settings=settings,
            standalone=True,
            clusterwide=True,
            memo=context,
            stop_flag=stop,
        )
    )
    try:
        yield result
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        events_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await events_task
        for uid in CREATED_UIDS:
            for state in await containers.find({LABEL_WORKLOAD_UID: uid}):
                await containers.remove(state.id)
        CREATED_UIDS.clear()
        containers.close()
        api.close()


def workload_object(
    name: str, node: str, namespace: str = "default", **spec: Any
) -> dict[str, Any]:
    uid = f"{name}-{uuid.uuid4()}"  # unique per test run: the uid labels the real container
    CREATED_UIDS.add(uid)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": workload.KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "generation": 1,
            "uid": uid,
            "resourceVersion": "1",  # kopf's finalizer patch tests it; kmock keeps none
        },
        "spec": {
            "nodeName": node,
            "image": TEST_IMAGE,
            "command": ["/bin/sleep"],
            "args": ["300"],
            **spec,
        },
    }


def backuprun_object(name: str, node: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": backuprun.KIND,
        "metadata": {
            "name": name,
            "namespace": "default",
            "generation": 1,
            "uid": f"uid-{name}",
            "resourceVersion": "1",
        },
        "spec": {"nodeName": node, "policy": "daily", "taskType": "backup", **spec},
    }
