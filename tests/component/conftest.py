"""kopf handlers against the kmock API emulator (PyPI `kmock`, by kopf's author).

kmock's gaps, so nobody reads more into these tests than they prove (e2e covers each on a real
API server): no resourceVersion, no status-subresource semantics (a status PATCH merges into the
object), no label or field selectors (other nodes' objects DO arrive here, which is how the
agent's own filtering is tested), no schema validation, no server-side apply field ownership
(an apply merges like any patch), and /version says v1.26 unless a test overrides it.
"""

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import kmock
import kopf
import kubernetes.client
import pytest

from nodekeeper.api import GROUP, VERSION, backuprun, workload
from nodekeeper.app import BACKUPRUN_FIELDS, HANDLER_FIELD_MANAGER, WORKLOAD_FIELDS
from nodekeeper.handlers import operator
from nodekeeper.handlers.context import AgentContext
from nodekeeper.kube.client import Credentials
from nodekeeper.kube.status import ConditionChange, Resource, StatusWriter
from nodekeeper.metrics import Metrics

NODE = "node-a"
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
    backupruns: NotifyingWriter


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
    """The agent's kopf side, wired as app.run() wires it, against the emulator."""
    server = str(emulator.url).rstrip("/")
    api = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=server))
    metrics = Metrics()

    def writer(resource: Resource, fields: Sequence[str], types: Sequence[str]) -> NotifyingWriter:
        return NotifyingWriter(
            api,
            resource=resource,
            field_manager=HANDLER_FIELD_MANAGER,
            fields=fields,
            condition_types=types,
            node_name=NODE,
            metrics=metrics,
        )

    result = Agent(
        metrics=metrics,
        workloads=writer(
            Resource(workload.KIND, workload.PLURAL),
            WORKLOAD_FIELDS,
            (workload.ADMITTED, workload.READY),
        ),
        backupruns=writer(
            Resource(backuprun.KIND, backuprun.PLURAL),
            BACKUPRUN_FIELDS,
            (backuprun.RUNNING, backuprun.COMPLETED),
        ),
    )
    context = AgentContext(
        node_name=NODE,
        metrics=metrics,
        workload_status=result.workloads,
        backuprun_status=result.backupruns,
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
            registry=operator.registry(credentials),
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
        api.close()


async def eventually(check: Callable[[], bool], seconds: float = 10) -> None:
    """Wait for a condition the test cannot be notified of (bounded; fails on timeout)."""
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110 - a metric offers nothing to await
            await asyncio.sleep(0.02)


def workload_object(name: str, node: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": workload.KIND,
        "metadata": {"name": name, "namespace": "default", "generation": 1, "uid": f"uid-{name}"},
        "spec": {"nodeName": node, "image": "busybox:latest", **spec},
    }


def backuprun_object(name: str, node: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": backuprun.KIND,
        "metadata": {"name": name, "namespace": "default", "generation": 1, "uid": f"uid-{name}"},
        "spec": {"nodeName": node, "policy": "daily", "taskType": "backup", **spec},
    }
