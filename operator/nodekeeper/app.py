"""Wiring: build the agent's parts from settings, run them, and stop them in stages.

Start order: settings and credentials are checked first (one clear line on failure), then the
server version, then the HTTP server, then kopf. Stop order is the reverse: kopf stops on
SIGTERM/SIGINT (its own signal handlers, which also set our stop flag's counterpart), then the
HTTP server. kopf treats every task created after it starts as its own and cancels it on exit, so
our long-lived parts start before kopf does.
"""

import asyncio
import dataclasses
import functools
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path

import kopf

from nodekeeper import __version__
from nodekeeper.agent.metrics import SelfMemoryCollector
from nodekeeper.agent.recorder import FlightRecorder
from nodekeeper.agent.selfprotect import ReadBudget, SelfProtection
from nodekeeper.agent.selfwatch import SelfWatch
from nodekeeper.api import backuprun, workload
from nodekeeper.api.codes import EXIT_CLUSTER, EXIT_HUNG, EXIT_STOPPED
from nodekeeper.api.names import AGENT_FIELD_MANAGER, LABEL_WORKLOAD_UID, RUNTIME_FIELD_MANAGER
from nodekeeper.backups.metrics import rebuild as rebuild_backup_metrics
from nodekeeper.backups.services import BackupServices
from nodekeeper.config import Settings
from nodekeeper.handlers import operator
from nodekeeper.handlers.backupruns import STATUS_FIELDS as BACKUPRUN_FIELDS
from nodekeeper.handlers.context import AgentContext
from nodekeeper.kube import client, version
from nodekeeper.kube.access import AccessReviewer
from nodekeeper.kube.backupruns import BackupRuns
from nodekeeper.kube.client import ApiClient
from nodekeeper.kube.configmaps import ConfigMaps
from nodekeeper.kube.errors import KubeError
from nodekeeper.kube.events import NodeEvents
from nodekeeper.kube.nodes import NodeConditionWriter
from nodekeeper.kube.objects import Objects
from nodekeeper.kube.secrets import Secrets
from nodekeeper.kube.status import Resource, StatusWriter
from nodekeeper.logapi import LogApi
from nodekeeper.logs.discovery import own_container_id
from nodekeeper.logs.metrics import LogMetrics, LogStateCollector, WorkloadLogCollector
from nodekeeper.logs.pipeline import LogPipeline, PipelineLimits
from nodekeeper.logs.readback import StoredLogs
from nodekeeper.logs.rules import LogRules
from nodekeeper.logs.store import LogStore
from nodekeeper.metrics import Metrics
from nodekeeper.nodeid import node_id
from nodekeeper.pressure.admission import AdmissionGate, AdmissionLimits
from nodekeeper.pressure.cgroups import CgroupReader
from nodekeeper.pressure.metrics import PressureCollector, WorkloadUsageCollector
from nodekeeper.pressure.psi import PsiReader
from nodekeeper.pressure.reporter import NodePressure
from nodekeeper.pressure.sampler import PressureSampler
from nodekeeper.pressure.thresholds import (
    PressureTracker,
    Threshold,
    Transition,
    every_resource,
)
from nodekeeper.pressure.totals import TotalsReader
from nodekeeper.pressure.usage import WorkloadUsage
from nodekeeper.runtime.containers import Containers
from nodekeeper.runtime.errors import DockerError
from nodekeeper.runtime.events import ContainerEvents
from nodekeeper.runtime.logstream import ContainerLogs
from nodekeeper.runtime.protocols import ContainerEventSource, ContainerRuntime
from nodekeeper.server import HttpServer, api_guard
from nodekeeper.workloads import usage as workload_usage
from nodekeeper.workloads.gc import GarbageCollector
from nodekeeper.workloads.images import ImagePolicy
from nodekeeper.workloads.runner import WorkloadRunner
from nodekeeper.workloads.status import (
    ADMISSION_CONDITIONS,
    ADMISSION_FIELDS,
    RUNTIME_CONDITIONS,
    RUNTIME_FIELDS,
    WorkloadStatus,
)
from nodekeeper.workloads.supervisor import WorkloadSupervisor

logger = logging.getLogger(__name__)


LOG_STORE_FILE = "logs.db"


def log_pipeline(
    settings: Settings,
    metrics: Metrics,
    api_source: ContainerLogs | None = None,
    budget: ReadBudget | None = None,
) -> tuple[LogPipeline, LogStore]:
    """The log pipeline and its store, its metrics registered; the caller runs and closes them."""
    store = LogStore(settings.state_dir / LOG_STORE_FILE, sync=settings.log_store_sync)
    pipeline = LogPipeline(
        root=settings.log_containers_dir,
        store=store,
        rules=LogRules(settings.log_include, own_exclusions(settings), own_container_id()),
        metrics=LogMetrics(metrics.registry),
        limits=PipelineLimits(
            max_line_bytes=settings.log_max_line_bytes,
            read_chunk_bytes=settings.log_read_chunk_bytes,
            queue_bytes=settings.log_queue_bytes,
            poll_seconds=settings.log_poll_seconds,
            retention_seconds=settings.log_retention_seconds,
            retention_max_bytes=settings.log_store_max_bytes,
            read_from_head=settings.log_read_from_head,
            max_watches=settings.log_max_watches,
            read_linger_seconds=settings.log_read_linger_seconds,
            event_pace_seconds=settings.log_event_pace_seconds,
            write_linger_seconds=settings.log_write_linger_seconds,
        ),
        api_source=api_source,
        read_size=(lambda: budget.size) if budget is not None else None,
    )
    metrics.registry.register(LogStateCollector(pipeline.state))
    metrics.registry.register(WorkloadLogCollector(lambda: pipeline.workload_totals))
    return pipeline, store


@dataclasses.dataclass(frozen=True)
class PressureParts:
    sampler: PressureSampler  # PSI, sampled into its tracker's conditions
    protection: SelfProtection  # the agent's own memory
    cgroups: CgroupReader  # shared by every cgroup read, so one counter says what was malformed

    @property
    def tracker(self) -> PressureTracker:
        return self.sampler.tracker


def pressure_parts(settings: Settings, metrics: Metrics) -> PressureParts:
    """What both the agent and ``--offline`` sample, their metrics registered."""
    psi = PsiReader(settings.proc_root / "pressure")
    threshold = Threshold(
        enter_ratio=settings.pressure_enter_ratio,
        exit_ratio=settings.pressure_exit_ratio,
        sustain_seconds=settings.pressure_sustain_seconds,
    )
    tracker = PressureTracker(every_resource(threshold))
    cgroups = CgroupReader(root=settings.cgroup_root, proc=settings.proc_root)
    protection = SelfProtection(cgroups, fallback_limit_bytes=settings.memory_limit_bytes or None)
    metrics.registry.register(
        PressureCollector(
            psi=psi.read_all,
            conditions=tracker.states,
            read_errors=lambda: {**psi.malformed, **cgroups.malformed},
        )
    )
    metrics.registry.register(SelfMemoryCollector(protection.read))
    sampler = PressureSampler(psi, tracker, interval_seconds=settings.pressure_sample_seconds)
    return PressureParts(sampler, protection, cgroups)


def self_watch(
    settings: Settings, pressure: PressureParts, pipeline: LogPipeline, budget: ReadBudget
) -> SelfWatch:
    """The agent's memory against its limit driving the log read size, and the flight recorder
    of its last hour; the caller runs it."""
    return SelfWatch(
        protection=pressure.protection,
        recorder=FlightRecorder(keep=settings.crash_reports_kept),
        state_dir=settings.state_dir,
        pressure=lambda: {state.type: state.status for state in pressure.tracker.states()},
        budgets=[budget],
        logs=pipeline.state,
    )


def report_on_sigusr1(selfwatch: SelfWatch) -> None:
    """``kill -USR1`` writes a crash report; the write runs in a thread while the agent goes on."""
    reports: set[asyncio.Task[Path | None]] = set()

    def report() -> None:
        written = asyncio.create_task(selfwatch.dump_async("SIGUSR1"))
        reports.add(written)  # held until done: the loop keeps only weak references
        written.add_done_callback(reports.discard)

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, report)


def part_died(task: "asyncio.Task[None]", selfwatch: SelfWatch) -> None:
    """Say that a long-lived part of the agent ended, and write the crash report; the caller
    stops the agent. The report is written here, on the loop: the agent stops next, and the
    report must be whole."""
    error = task.exception()
    logger.error(
        "agent task ended unexpectedly; stopping the agent",
        extra={"task": task.get_name(), "error": repr(error)},
    )
    selfwatch.dump(f"agent task {task.get_name()!r} failed: {error!r}")


def own_exclusions(settings: Settings) -> list[str]:
    """The user's exclude rules, plus the agent's own pod: reading its own log would feed the
    pipeline with its own output (the container id alone is not enough under cri-dockerd with
    a private cgroup namespace, where the agent cannot see it)."""
    own = [f"label:io.kubernetes.pod.name={settings.pod_name}"] if settings.pod_name else []
    return [*settings.log_exclude, *own]


def log_read_budget(settings: Settings) -> ReadBudget:
    """Bytes per log read: the setting when calm, down to 16 KiB at the critical memory level."""
    chunk = settings.log_read_chunk_bytes
    return ReadBudget(minimum=min(16 * 1024, chunk), maximum=chunk, step=max(chunk // 16, 1))


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


def handler_context(
    api: ApiClient,
    *,
    node_name: str,
    metrics: Metrics,
    containers: ContainerRuntime,
    events: ContainerEventSource,
    image_policy: ImagePolicy,
    admission: AdmissionGate | None = None,
    backups: BackupServices | None = None,
    phases: dict[str, str] | None = None,
    writer: type[StatusWriter] = StatusWriter,
) -> AgentContext:
    """What the handlers get as kopf's memo: the Workload supervisor with its two status
    writers, the BackupRun status writer and the backup services. ``writer`` lets the component
    tests watch the real writers' calls."""

    def status(
        kind: str, plural: str, manager: str, fields: Sequence[str], types: Sequence[str]
    ) -> StatusWriter:
        return writer(
            api,
            resource=Resource(kind, plural),
            field_manager=manager,
            fields=fields,
            condition_types=types,
            node_name=node_name,
            metrics=metrics,
        )

    workload_status = WorkloadStatus(
        admission=status(
            workload.KIND,
            workload.PLURAL,
            AGENT_FIELD_MANAGER,
            ADMISSION_FIELDS,
            ADMISSION_CONDITIONS,
        ),
        runtime=status(
            workload.KIND,
            workload.PLURAL,
            RUNTIME_FIELD_MANAGER,
            RUNTIME_FIELDS,
            RUNTIME_CONDITIONS,
        ),
    )
    supervisor = WorkloadSupervisor(
        node_name=node_name,
        runner=WorkloadRunner(containers),
        status=workload_status,
        events=events,
        objects=Objects(api),
        image_policy=image_policy,
        metrics=metrics,
        admission=admission,
        phases=phases,
    )
    return AgentContext(
        node_name=node_name,
        metrics=metrics,
        workloads=supervisor,
        backuprun_status=status(
            backuprun.KIND,
            backuprun.PLURAL,
            AGENT_FIELD_MANAGER,
            BACKUPRUN_FIELDS,
            (backuprun.RUNNING, backuprun.COMPLETED),
        ),
        backups=backups,
    )


async def run(settings: Settings) -> int:
    """Run the agent until SIGTERM/SIGINT.

    Raises SettingsError, KubeError or DockerError (each one line for the user) on bad start-up.
    Returns the exit code: 0 after a requested stop, 1 when one of its parts died.
    """
    failed: list[str] = []
    settings.require_node()
    configuration = client.load(settings.kubeconfig)
    api = client.api_client(configuration, settings.api_timeout_seconds)
    containers: Containers | None = None
    store: LogStore | None = None
    server: HttpServer | None = None
    background: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    interrupted: list[str] = []

    def give_up() -> None:
        logger.error(
            "shutdown took longer than shutdown_timeout_seconds; exiting now",
            extra={"seconds": settings.shutdown_timeout_seconds},
        )
        logging.shutdown()
        os._exit(EXIT_HUNG)

    def stop_starting(signum: signal.Signals) -> None:
        # Until kopf runs (its own handlers replace these): end start-up where it is; the
        # cleanup below closes what was opened, and the exit is a clean 0 unless a call in a
        # thread (bounded by api_timeout_seconds) holds the exit past the shutdown timeout.
        if interrupted:
            return  # one stop at a time: a second cancel would cut the cleanup short
        logger.info("stopping during start-up", extra={"signal": signum.name})
        interrupted.append(signum.name)
        if main is not None:
            main.cancel()
        loop.call_later(settings.shutdown_timeout_seconds, give_up)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_starting, signum)
    try:
        # Debug only: a refused start-up stays one line of stderr.
        logger.debug("connecting to the API server", extra={"server": configuration.host})
        server_version = await version.check(api)
        phases: dict[str, str] = {}
        metrics = Metrics(workload_phases=lambda: phases)
        # Without Workloads and BackupRuns the agent needs no Docker socket (the chart mounts
        # none then): logs are tailed from files, local/journald ones are counted unfollowed.
        uses_docker = settings.workloads_enabled or settings.backup_runs_enabled
        if uses_docker:
            containers = await asyncio.to_thread(
                functools.partial(
                    Containers.connect, settings.docker_host, node_name=settings.node_name
                )
            )
            await containers.ping()
        else:
            containers = Containers.unconnected(settings.docker_host)
        # Log reads shrink as the agent's memory nears its limit (self-protection).
        budget = log_read_budget(settings)
        api_logs = ContainerLogs(containers.client) if uses_docker else None
        pipeline, store = log_pipeline(settings, metrics, api_logs, budget)
        background.append(asyncio.create_task(pipeline.run(), name="log pipeline"))
        drain_timeout = settings.log_drain_timeout_seconds
        containers.removal_gate = lambda container_id: pipeline.drain(container_id, drain_timeout)
        runs = BackupRuns(api)
        backups = BackupServices.build(
            containers=containers,
            config_maps=ConfigMaps(api),
            runs=runs,
            secrets=Secrets(api),
            registry=metrics.registry,
            node_name=settings.node_name,
            log_cap_bytes=settings.backup_log_cap_bytes,
            succeeded_limit=settings.backup_succeeded_history_limit,
            failed_limit=settings.backup_failed_history_limit,
            task_logs=StoredLogs(
                pipeline,
                store.path,
                ContainerLogs(containers.client),
                drain_timeout_seconds=drain_timeout,
            ),
        )
        events = ContainerEvents(containers.client, key_label=LABEL_WORKLOAD_UID)
        if uses_docker:
            # Started before kopf: kopf cancels every task created after it starts as its own.
            background.append(asyncio.create_task(events.run(), name="docker events"))
        identity = node_id()
        metrics.agent_info.info(
            {"version": __version__, "node": settings.node_name, "node_id": identity}
        )

        # Pressure: PSI into Node conditions, the admission gate, the agent's own memory.
        pressure = pressure_parts(settings, metrics)
        tracker = pressure.tracker
        node_pressure = NodePressure(
            sampler=pressure.sampler,
            tracker=tracker,
            writer=NodeConditionWriter(api, node_name=settings.node_name),
            events=NodeEvents(api, node_name=settings.node_name),
            heartbeat_seconds=settings.node_heartbeat_seconds,
            pressure_root=settings.proc_root / "pressure",
            trigger_stall_us=settings.pressure_trigger_stall_us,
            trigger_window_us=settings.pressure_trigger_window_us,
        )
        background.append(asyncio.create_task(node_pressure.run(), name="node pressure"))
        selfwatch = self_watch(settings, pressure, pipeline, budget)
        background.append(asyncio.create_task(selfwatch.run(), name="self watch"))
        report_on_sigusr1(selfwatch)
        admission = AdmissionGate(
            tracker,
            TotalsReader(disk_path=settings.docker_root),
            AdmissionLimits(
                memory_used_ratio=settings.admission_memory_ratio,
                cpu_used_ratio=settings.admission_cpu_ratio,
                disk_used_ratio=settings.admission_disk_ratio,
            ),
        )
        context = handler_context(
            api,
            node_name=settings.node_name,
            metrics=metrics,
            containers=containers,
            events=events,
            image_policy=ImagePolicy(settings.image_policy),
            admission=admission,
            backups=backups,
            phases=phases,
        )
        if uses_docker:
            # Started before kopf, like the events task.
            collector = GarbageCollector(
                containers=containers,
                objects=Objects(api),
                node_name=settings.node_name,
                metrics=metrics,
                grace_seconds=settings.gc_grace_seconds,
            )
            background.append(
                asyncio.create_task(
                    collector.run(interval_seconds=settings.gc_interval_seconds),
                    name="garbage collector",
                )
            )
        if settings.workloads_enabled:
            usage = WorkloadUsage(pressure.cgroups)
            metrics.registry.register(WorkloadUsageCollector(usage.latest))
            background.append(
                asyncio.create_task(
                    workload_usage.sampler(
                        containers, usage, interval_seconds=settings.pressure_sample_seconds
                    ),
                    name="workload usage",
                )
            )
        readiness = Readiness(started=asyncio.Event())
        server = HttpServer(
            host=settings.http_host,
            port=settings.http_port,
            metrics=metrics,
            readiness=readiness.problem,
            routes=LogApi(store.path).routes(),
            guard=api_guard(
                AccessReviewer(
                    api,
                    node_name=settings.node_name,
                    allowed_ttl_seconds=settings.api_auth_allowed_ttl_seconds,
                    denied_ttl_seconds=settings.api_auth_denied_ttl_seconds,
                ).review
            )
            if settings.api_auth == "kubernetes"
            else None,
        )
        await server.start()
        logger.info(
            "agent starting",
            extra={
                "node": settings.node_name,
                "node_id": identity,
                "version": __version__,
                "server_version": server_version,
            },
        )
        try:
            # The last success per policy comes from the BackupRuns, never only from memory.
            await rebuild_backup_metrics(backups.metrics, runs, node_name=settings.node_name)
        except KubeError as e:
            logger.warning("backup metrics not rebuilt", extra={"error": str(e)})
        stop = asyncio.Event()
        existing = asyncio.all_tasks()
        tasks = await kopf.spawn_tasks(
            registry=operator.registry(
                lambda: client.credentials(configuration),
                with_workloads=settings.workloads_enabled,
                with_backupruns=settings.backup_runs_enabled,
            ),
            settings=operator.settings(
                settings.node_name,
                shutdown_timeout=settings.shutdown_timeout_seconds,
                api_timeout=settings.api_timeout_seconds,
            ),
            standalone=True,
            clusterwide=True,
            memo=context,
            ready_flag=readiness.started,
            stop_flag=stop,
        )

        def request_stop(signum: signal.Signals) -> None:
            # Ours first: kopf waits for every task it did not start before it exits, so our
            # tasks (and what they spawned) stop now, then kopf stops on the flag.
            logger.info("stopping", extra={"signal": signum.name})
            readiness.stopping = True
            for task in background:
                task.cancel()
            stop.set()
            # The hard guard: a node drain must never hang on this agent.
            loop.call_later(settings.shutdown_timeout_seconds, give_up)

        def supervise(task: asyncio.Task[None]) -> None:
            # A long-lived part that dies would leave the agent half-blind while /readyz stays
            # green: stop the whole agent instead, so the kubelet restarts it.
            if task.cancelled() or stop.is_set():
                return
            failed.append(task.get_name())
            part_died(task, selfwatch)
            request_stop(signal.SIGTERM)

        for task in background:
            task.add_done_callback(supervise)

        # Replaces kopf's own SIGTERM/SIGINT handlers (installed by spawn_tasks).
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, request_stop, signum)
        try:
            await kopf.run_tasks(tasks, ignored=existing | set(background))
        except Exception as e:
            selfwatch.dump(f"unhandled exception: {e!r}")
            raise
        finally:
            readiness.stopping = True
            logger.info("operator stopped; stopping the HTTP server")
            await asyncio.wait_for(server.stop(), timeout=settings.shutdown_timeout_seconds)
    except asyncio.CancelledError:
        if not interrupted or main is None:
            raise
        main.uncancel()
        if server is not None:
            await server.stop()
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if containers is not None:
            containers.close()
        if store is not None:
            store.close()
        api.close()  # type: ignore[no-untyped-call]
    logger.info("agent stopped", extra={"failed_tasks": failed} if failed else {})
    if interrupted:
        # Stopped during start-up: everything opened is closed, but a call still waiting in a
        # worker thread (up to api_timeout_seconds) would hold asyncio.run's exit, which joins
        # its threads. Its answer is not needed: leave now.
        logging.shutdown()
        os._exit(EXIT_STOPPED)
    return EXIT_CLUSTER if failed else EXIT_STOPPED


async def run_offline(settings: Settings) -> int:
    """The log pipeline, pressure sampling and metrics, without Kubernetes (plain Docker hosts).

    Returns 0 after SIGTERM/SIGINT, 1 when a part died.
    """
    metrics = Metrics(workload_phases=dict)
    metrics.agent_info.info(
        {"version": __version__, "node": settings.node_name or "offline", "node_id": node_id()}
    )
    containers: Containers | None = None
    try:
        containers = await asyncio.to_thread(Containers.connect, settings.docker_host)
        await containers.ping()
    except DockerError as e:
        # Files are still tailed; only drivers without a file (local, journald) need the API.
        logger.warning(
            "Docker API unavailable: logs of local/journald containers are not read",
            extra={"error": str(e)},
        )
        containers = None
    api_source = ContainerLogs(containers.client) if containers is not None else None
    budget = log_read_budget(settings)
    pipeline, store = log_pipeline(settings, metrics, api_source, budget)
    pressure = pressure_parts(settings, metrics)
    selfwatch = self_watch(settings, pressure, pipeline, budget)

    async def log_transitions(transitions: Sequence[Transition]) -> None:
        for transition in transitions:
            state = transition.current
            logger.warning(
                "node pressure changed",
                extra={"condition": state.type, "status": state.status, "reason": state.reason},
            )

    # Offline there is no API server to vouch for callers: the log API is served only when the
    # user said explicitly that it needs no authentication.
    serve_logs = settings.api_auth == "none"
    if not serve_logs:
        logger.warning(
            "the log API is off: offline it cannot check callers; pass --api-auth none to "
            "serve it without authentication (nodekeeper logs --state-dir reads the store)"
        )
    server = HttpServer(
        host=settings.http_host,
        port=settings.http_port,
        metrics=metrics,
        readiness=lambda: None if pipeline.started.is_set() else "starting: the log pipeline",
        routes=LogApi(store.path).routes() if serve_logs else (),
    )
    tasks = [
        asyncio.create_task(pipeline.run(), name="log pipeline"),
        asyncio.create_task(pressure.sampler.run(log_transitions), name="pressure sampler"),
        asyncio.create_task(selfwatch.run(), name="self watch"),
    ]
    report_on_sigusr1(selfwatch)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    failed = False
    try:
        await server.start()
        logger.info("agent starting offline", extra={"version": __version__})
        stopping = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        failed = stopping not in done
        if failed:
            part_died(next(task for task in tasks if task in done), selfwatch)
        stopping.cancel()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.stop()
        store.close()
        if containers is not None:
            containers.close()
    logger.info("agent stopped")
    return EXIT_CLUSTER if failed else EXIT_STOPPED
