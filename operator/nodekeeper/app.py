"""Wiring: build the agent's parts from settings, run them, and stop them in stages.

Start order: settings and credentials are checked first (one clear line on failure), then the
server version, then the HTTP server, then kopf. Stop order is the reverse: kopf stops on
SIGTERM/SIGINT (its own signal handlers, which also set our stop flag's counterpart), then the
HTTP server. kopf treats every task created after it starts as its own and cancels it on exit, so
our long-lived parts start before kopf does.
"""

import asyncio
import contextlib
import dataclasses
import logging

import kopf

from nodekeeper import __version__
from nodekeeper.api import backuprun, workload
from nodekeeper.config import Settings
from nodekeeper.handlers import garbage, operator
from nodekeeper.handlers.context import AgentContext
from nodekeeper.kube import client, version
from nodekeeper.kube.objects import Objects
from nodekeeper.kube.status import Resource, StatusWriter
from nodekeeper.metrics import Metrics
from nodekeeper.runtime.containers import Containers
from nodekeeper.runtime.events import ContainerEvents
from nodekeeper.runtime.images import ImagePolicy
from nodekeeper.runtime.workloads import LABEL_UID, WorkloadRunner
from nodekeeper.server import HttpServer

logger = logging.getLogger(__name__)

# Field managers of the status writers; `kubectl get -o yaml --show-managed-fields` shows them.
HANDLER_FIELD_MANAGER = "nodekeeper-agent"
RUNTIME_FIELD_MANAGER = "nodekeeper-runtime"

WORKLOAD_ADMISSION_FIELDS = ("observedGeneration", "errorCode", "message")
WORKLOAD_RUNTIME_FIELDS = ("phase", "containerID", "restarts", "lastExitCode", "nextRetryAt")
BACKUPRUN_FIELDS = (
    "observedGeneration",
    "phase",
    "startTime",
    "completionTime",
    "durationSeconds",
    "exitCode",
    "snapshotId",
    "summary",
    "errorMessage",
    "log",
)


@dataclasses.dataclass
class Readiness:
    """What /readyz reports: ready once kopf has started, not ready again while stopping."""

    started: asyncio.Event
    stopping: bool = False

    def problem(self) -> str | None:
        if self.stopping:
            return "stopping"
        if not self.started.is_set():
            return "starting: the operator has not connected yet"
        return None


async def run(settings: Settings) -> None:
    """Run the agent until SIGTERM/SIGINT.

    Raises SettingsError, KubeError or DockerError (each one line for the user) on bad start-up.
    """
    settings.require_node()
    configuration = client.load(settings.kubeconfig)
    api = client.api_client(configuration)
    containers: Containers | None = None
    background: list[asyncio.Task[None]] = []
    try:
        server_version = await version.check(api)
        containers = Containers.connect(settings.docker_host)
        await containers.ping()
        events = ContainerEvents(containers.client, key_label=LABEL_UID)
        # Started before kopf: kopf cancels every task created after it starts as its own.
        background.append(asyncio.create_task(events.run(), name="docker events"))
        phases: dict[str, str] = {}
        metrics = Metrics(workload_phases=lambda: phases)
        metrics.agent_info.info({"version": __version__, "node": settings.node_name})
        context = AgentContext(
            node_name=settings.node_name,
            metrics=metrics,
            workload_status=StatusWriter(
                api,
                resource=Resource(workload.KIND, workload.PLURAL),
                field_manager=HANDLER_FIELD_MANAGER,
                fields=WORKLOAD_ADMISSION_FIELDS,
                condition_types=(workload.ADMITTED,),
                node_name=settings.node_name,
                metrics=metrics,
            ),
            workload_runtime_status=StatusWriter(
                api,
                resource=Resource(workload.KIND, workload.PLURAL),
                field_manager=RUNTIME_FIELD_MANAGER,
                fields=WORKLOAD_RUNTIME_FIELDS,
                condition_types=(workload.READY,),
                node_name=settings.node_name,
                metrics=metrics,
            ),
            backuprun_status=StatusWriter(
                api,
                resource=Resource(backuprun.KIND, backuprun.PLURAL),
                field_manager=HANDLER_FIELD_MANAGER,
                fields=BACKUPRUN_FIELDS,
                condition_types=(backuprun.RUNNING, backuprun.COMPLETED),
                node_name=settings.node_name,
                metrics=metrics,
            ),
            workloads=WorkloadRunner(containers),
            events=events,
            objects=Objects(api),
            image_policy=ImagePolicy(settings.image_policy),
            phases=phases,
        )
        # Started before kopf, like the events task.
        garbage_task = asyncio.create_task(
            garbage.collector(
                context,
                interval_seconds=settings.gc_interval_seconds,
                grace_seconds=settings.gc_grace_seconds,
            ),
            name="garbage collector",
        )
        background.append(garbage_task)
        readiness = Readiness(started=asyncio.Event())
        server = HttpServer(
            host=settings.http_host,
            port=settings.http_port,
            metrics=metrics,
            readiness=readiness.problem,
        )
        await server.start()
        logger.info(
            "agent starting",
            extra={
                "node": settings.node_name,
                "version": __version__,
                "server_version": server_version,
            },
        )
        try:
            await kopf.operator(
                registry=operator.registry(client.credentials(configuration)),
                settings=operator.settings(
                    settings.node_name, shutdown_timeout=settings.shutdown_timeout_seconds
                ),
                standalone=True,
                clusterwide=True,
                memo=context,
                ready_flag=readiness.started,
            )
        finally:
            readiness.stopping = True
            logger.info("operator stopped; stopping the HTTP server")
            await asyncio.wait_for(server.stop(), timeout=settings.shutdown_timeout_seconds)
    finally:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if containers is not None:
            containers.close()
        api.close()  # type: ignore[no-untyped-call]
    logger.info("agent stopped")
