"""Build the agent's parts from Settings: what ``nodekeeper run`` and ``run --offline`` start.

Each builder takes settings and the clients and returns a part with its metrics registered; none
starts anything (app/run.py does, in stages). The component tests build the handlers' memo with
:func:`handler_context`, so they test the wiring the agent runs, not a copy of it.
"""

import asyncio
import dataclasses
import functools
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from nodekeeper.agent.metrics import SelfMemoryCollector
from nodekeeper.agent.recorder import FlightRecorder
from nodekeeper.agent.selfprotect import ReadBudget, SelfProtection
from nodekeeper.agent.selfwatch import SelfWatch
from nodekeeper.api import backuprun, workload
from nodekeeper.api.names import (
    AGENT_FIELD_MANAGER,
    LABEL_WORKLOAD_UID,
    RUNTIME_FIELD_MANAGER,
)
from nodekeeper.backups.services import BackupServices
from nodekeeper.config import Settings
from nodekeeper.handlers.backupruns import STATUS_FIELDS as BACKUPRUN_FIELDS
from nodekeeper.handlers.context import AgentContext
from nodekeeper.kube.access import AccessReviewer
from nodekeeper.kube.backupruns import BackupRuns
from nodekeeper.kube.client import ApiClient
from nodekeeper.kube.configmaps import ConfigMaps
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
from nodekeeper.logs.store import STORE_FILE, LogStore
from nodekeeper.metrics import Metrics
from nodekeeper.pressure.admission import AdmissionGate, AdmissionLimits
from nodekeeper.pressure.cgroups import CgroupReader
from nodekeeper.pressure.metrics import PressureCollector, WorkloadUsageCollector
from nodekeeper.pressure.psi import PsiReader
from nodekeeper.pressure.reporter import NodePressure
from nodekeeper.pressure.sampler import PressureSampler
from nodekeeper.pressure.thresholds import PressureTracker, Threshold, every_resource
from nodekeeper.pressure.totals import TotalsReader
from nodekeeper.pressure.usage import WorkloadUsage
from nodekeeper.runtime.containers import Containers
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


def log_pipeline(
    settings: Settings,
    metrics: Metrics,
    api_source: ContainerLogs | None = None,
    budget: ReadBudget | None = None,
) -> tuple[LogPipeline, LogStore]:
    """The log pipeline and its store, its metrics registered; the caller runs and closes them."""
    store = LogStore(settings.state_dir / STORE_FILE, sync=settings.log_store_sync)
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


Part = tuple[str, Callable[[], Coroutine[Any, Any, None]]]


@dataclasses.dataclass
class AgentParts:
    """Everything ``nodekeeper run`` runs besides kopf, built and not yet started."""

    metrics: Metrics
    containers: Containers
    store: LogStore
    selfwatch: SelfWatch
    context: AgentContext  # kopf's memo
    server: HttpServer
    runs: BackupRuns
    # The long-lived parts in start order, by name: each a coroutine function run as a task.
    background: list[Part]

    def close(self) -> None:
        self.containers.close()
        self.store.close()


async def agent_parts(
    settings: Settings, api: ApiClient, *, readiness: Callable[[], str | None]
) -> AgentParts:
    """Build the agent for ``settings``; connects to Docker when Workloads or BackupRuns run.

    Raises DockerError when the engine is needed and does not answer.
    """
    phases: dict[str, str] = {}
    metrics = Metrics(workload_phases=lambda: phases)
    # Without Workloads and BackupRuns the agent needs no Docker socket (the chart mounts none
    # then): logs are tailed from files, local/journald ones are counted unfollowed.
    uses_docker = settings.workloads_enabled or settings.backup_runs_enabled
    if uses_docker:
        containers = await asyncio.to_thread(
            functools.partial(
                Containers.connect, settings.docker_host, node_name=settings.node_name
            )
        )
        try:
            await containers.ping()
        except BaseException:
            containers.close()
            raise
    else:
        containers = Containers.unconnected(settings.docker_host)
    background: list[Part] = []
    # Log reads shrink as the agent's memory nears its limit (self-protection).
    budget = log_read_budget(settings)
    api_logs = ContainerLogs(containers.client) if uses_docker else None
    pipeline, store = log_pipeline(settings, metrics, api_logs, budget)
    background.append(("log pipeline", pipeline.run))
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
        background.append(("docker events", events.run))

    # Pressure: PSI into Node conditions, the admission gate, the agent's own memory.
    pressure = pressure_parts(settings, metrics)
    reporter = NodePressure(
        sampler=pressure.sampler,
        tracker=pressure.tracker,
        writer=NodeConditionWriter(api, node_name=settings.node_name),
        events=NodeEvents(api, node_name=settings.node_name),
        heartbeat_seconds=settings.node_heartbeat_seconds,
        pressure_root=settings.proc_root / "pressure",
        trigger_stall_us=settings.pressure_trigger_stall_us,
        trigger_window_us=settings.pressure_trigger_window_us,
    )
    background.append(("node pressure", reporter.run))
    selfwatch = self_watch(settings, pressure, pipeline, budget)
    background.append(("self watch", selfwatch.run))
    admission = AdmissionGate(
        pressure.tracker,
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
        collector = GarbageCollector(
            containers=containers,
            objects=Objects(api),
            node_name=settings.node_name,
            metrics=metrics,
            grace_seconds=settings.gc_grace_seconds,
        )
        background.append(
            (
                "garbage collector",
                functools.partial(collector.run, interval_seconds=settings.gc_interval_seconds),
            )
        )
    if settings.workloads_enabled:
        usage = WorkloadUsage(pressure.cgroups)
        metrics.registry.register(WorkloadUsageCollector(usage.latest))
        background.append(
            (
                "workload usage",
                functools.partial(
                    workload_usage.sampler,
                    containers,
                    usage,
                    interval_seconds=settings.pressure_sample_seconds,
                ),
            )
        )
    server = HttpServer(
        host=settings.http_host,
        port=settings.http_port,
        metrics=metrics,
        readiness=readiness,
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
    return AgentParts(
        metrics=metrics,
        containers=containers,
        store=store,
        selfwatch=selfwatch,
        context=context,
        server=server,
        runs=runs,
        background=background,
    )
