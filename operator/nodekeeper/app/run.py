"""Run the agent: start its parts in named stages, stop them in the reverse order.

Start order: settings and credentials are checked first (one clear line on failure), then the
server version, then the parts are built (app/build.py; Docker is connected here), then the
long-lived parts start as named tasks (log pipeline, Docker events, node pressure, self watch,
garbage collector, Workload usage), then the HTTP server, then kopf. kopf treats every task
created after it starts as its own and cancels it on exit, so our parts start before it does.

Stop order: on SIGTERM/SIGINT our tasks are cancelled first (kopf waits for every task it did
not start), then kopf stops on its flag, then the HTTP server; a stop that takes longer than
``shutdown_timeout_seconds`` exits at once with EXIT_HUNG. A part that dies stops the whole
agent with a crash report, so the kubelet restarts it instead of leaving it half-blind.
"""

import asyncio
import dataclasses
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path

import kopf

from nodekeeper import __version__
from nodekeeper.agent.selfwatch import SelfWatch
from nodekeeper.api.codes import EXIT_CLUSTER, EXIT_HUNG, EXIT_STOPPED
from nodekeeper.app import build
from nodekeeper.backups.metrics import rebuild as rebuild_backup_metrics
from nodekeeper.config import Settings
from nodekeeper.handlers import operator
from nodekeeper.kube import client, version
from nodekeeper.kube.errors import KubeError
from nodekeeper.logapi import LogApi
from nodekeeper.metrics import Metrics
from nodekeeper.nodeid import node_id
from nodekeeper.pressure.thresholds import Transition
from nodekeeper.runtime.containers import Containers
from nodekeeper.runtime.errors import DockerError
from nodekeeper.runtime.logstream import ContainerLogs
from nodekeeper.server import HttpServer

logger = logging.getLogger(__name__)


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


async def run(settings: Settings) -> int:
    """Run the agent until SIGTERM/SIGINT.

    Raises SettingsError, KubeError or DockerError (each one line for the user) on bad start-up.
    Returns the exit code: 0 after a requested stop, 1 when one of its parts died.
    """
    failed: list[str] = []
    settings.require_node()
    configuration = client.load(settings.kubeconfig)
    api = client.api_client(configuration, settings.api_timeout_seconds)
    parts: build.AgentParts | None = None
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
        readiness = Readiness(started=asyncio.Event())
        parts = await build.agent_parts(settings, api, readiness=readiness.problem)
        server, selfwatch = parts.server, parts.selfwatch
        identity = node_id()
        parts.metrics.agent_info.info(
            {"version": __version__, "node": settings.node_name, "node_id": identity}
        )
        # Started before kopf, in order: kopf cancels every task created after it starts as its
        # own, and waits for the ones it did not start.
        for name, part in parts.background:
            background.append(asyncio.create_task(part(), name=name))
        report_on_sigusr1(selfwatch)
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
            backups = parts.context.backups
            assert backups is not None  # the agent always builds them
            await rebuild_backup_metrics(backups.metrics, parts.runs, node_name=settings.node_name)
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
            memo=parts.context,
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
        if parts is not None:
            parts.close()
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
    budget = build.log_read_budget(settings)
    pipeline, store = build.log_pipeline(settings, metrics, api_source, budget)
    pressure = build.pressure_parts(settings, metrics)
    selfwatch = build.self_watch(settings, pressure, pipeline, budget)

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
