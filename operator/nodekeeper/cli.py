"""The ``nodekeeper`` command: ``run`` the agent, generate ``crds``, print ``--version``.

Every failure a user can cause ends with one line on stderr and a non-zero exit (2 for bad
settings, 1 for a cluster that cannot be used), never with a traceback.
"""

import argparse
import asyncio
import dataclasses
import datetime
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nodekeeper import __version__
from nodekeeper.api.codes import EXIT_CLUSTER, EXIT_SETTINGS
from nodekeeper.api.names import FINALIZER
from nodekeeper.api.times import parse_datetime
from nodekeeper.config import Settings, SettingsError, flag_name, load


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    for name, info in Settings.model_fields.items():
        default = info.default_factory() if info.default_factory else info.default  # type: ignore[call-arg]
        # A switch (--offline) may stand alone; --offline false still works.
        switch = {"nargs": "?", "const": "true"} if info.annotation is bool else {}
        parser.add_argument(
            flag_name(name),
            dest=name,
            default=None,
            metavar=name.upper(),
            help=f"{info.description} (env NODEKEEPER_{name.upper()}; default: {default!r})",
            **switch,  # type: ignore[arg-type]
        )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="nodekeeper",
        description="Node agent for Kubernetes nodes running the Docker Engine.",
    )
    top.add_argument("--version", action="version", version=f"nodekeeper {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the agent for this node",
        description="Run the agent: reconcile this node's Workloads and BackupRuns, serve "
        "/metrics, /healthz and /readyz. Settings come from flags, then NODEKEEPER_* "
        "environment variables, then defaults.",
    )
    _add_settings_flags(run)

    crds = commands.add_parser(
        "crds",
        help="write the CustomResourceDefinitions",
        description="Generate crds/*.yaml from the API models.",
    )
    crds.add_argument("--out", type=Path, default=Path("crds"), help="output folder (crds/)")

    pressure = commands.add_parser(
        "pressure",
        help="print what the agent sees of this node's pressure now",
        description="PSI per resource, the node's cgroup figures, the node's memory, CPU and "
        "Docker disk use, and each running Workload container's cgroup figures, read now from "
        "/proc, cgroupfs and the Docker socket (no cluster needed). The Nodekeeper*Pressure "
        "conditions are judged on these figures alone with the pressure_* settings: an "
        'instantaneous evaluation without the sustain window ("would be True at these '
        "figures\"), not the agent's own state. Roots and thresholds default to the settings "
        "(NODEKEEPER_* variables, as in the agent's pod), else to the host's paths.",
    )
    pressure.add_argument("--json", action="store_true", help="print JSON instead of text")
    pressure.add_argument(
        "--proc-root",
        type=Path,
        default=None,
        help="host /proc (default: NODEKEEPER_PROC_ROOT, else /proc)",
    )
    pressure.add_argument(
        "--cgroup-root",
        type=Path,
        default=None,
        help="host cgroup tree (default: NODEKEEPER_CGROUP_ROOT, else /sys/fs/cgroup)",
    )
    pressure.add_argument(
        "--docker-root",
        type=Path,
        default=None,
        help="Docker's data root (default: NODEKEEPER_DOCKER_ROOT, else /var/lib/docker)",
    )
    pressure.add_argument(
        "--docker-host",
        default=None,
        help="Docker API for the Workload containers (default: NODEKEEPER_DOCKER_HOST, else "
        "unix:///var/run/docker.sock)",
    )
    pressure.add_argument(
        "--no-workloads",
        action="store_true",
        help="leave out the per-Workload figures (no Docker call)",
    )

    backups = commands.add_parser(
        "backups",
        help="list, show, read and ingest BackupRuns",
        description="BackupRun history and logs, read from the API server (KUBECONFIG).",
    )
    backups.add_argument("--kubeconfig", type=Path, default=None, help="default: KUBECONFIG")
    backup_commands = backups.add_subparsers(dest="backups_command", required=True, metavar="CMD")
    listing = backup_commands.add_parser("list", help="list runs, newest first")
    listing.add_argument("-n", "--namespace", default=None, help="one namespace (default: all)")
    listing.add_argument("--policy")
    listing.add_argument(
        "--phase", choices=["Pending", "Running", "Succeeded", "PartiallyFailed", "Failed"]
    )
    listing.add_argument("--node")
    listing.add_argument("--task-type", choices=["backup", "check", "prune"])
    listing.add_argument("--since", type=_moment, help="RFC 3339, e.g. 2026-11-01T00:00:00Z")
    listing.add_argument("--until", type=_moment, help="RFC 3339")
    listing.add_argument("--limit", type=int, help="page size (the API server's own paging)")
    listing.add_argument("--continue", dest="continue_token", help="token from the last page")
    listing.add_argument("-o", "--output", choices=["table", "json"], default="table")
    for name, text in (("show", "a run's spec and status"), ("logs", "a run's log as written")):
        one = backup_commands.add_parser(name, help=text)
        one.add_argument("run", metavar="RUN")
        one.add_argument("-n", "--namespace", default="default")
    ingest = backup_commands.add_parser(
        "ingest", help="record a run executed elsewhere, with a log of any size"
    )
    ingest.add_argument("run", metavar="RUN", help="name of the BackupRun to create")
    ingest.add_argument("-n", "--namespace", default="default")
    ingest.add_argument("--node", required=True, help="the node whose agent records the run")
    ingest.add_argument("--policy", required=True)
    ingest.add_argument("--task-type", choices=["backup", "check", "prune"], default="backup")
    ingest.add_argument("--result", type=Path, required=True, help="JSON file: spec.result")
    ingest.add_argument("--log-file", type=Path, help="the run's log (any size)")

    logs = commands.add_parser(
        "logs",
        help="read the container logs the agent stored on this node",
        description="Query the node's log store directly (the agent may be running). Times are "
        "RFC 3339 or an age such as 15m, 2h, 7d. Lines come in the order they were stored, "
        "which is Docker's order for each container.",
    )
    logs.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="the agent's state directory (default: NODEKEEPER_STATE_DIR or /var/lib/nodekeeper)",
    )
    logs.add_argument("-c", "--container", help="container id (a prefix will do) or name")
    logs.add_argument("-w", "--workload", help="a Workload's name")
    logs.add_argument("-n", "--namespace", help="the pod's or Workload's namespace")
    logs.add_argument("--pod", help="a pod's name")
    logs.add_argument("--stream", choices=["stdout", "stderr", "unknown"])
    logs.add_argument("--since", help="from this time or age on")
    logs.add_argument("--until", help="up to this time or age")
    logs.add_argument("--contains", help="only lines containing this text")
    logs.add_argument(
        "--limit", default="1000", help="lines to print, at most 10000 (with -f: per page)"
    )
    logs.add_argument("--cursor", help="continue after this cursor (from a -o json page)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument(
        "-o",
        "--output",
        choices=["text", "raw", "json"],
        default="text",
        help="text: time, container, stream and line; raw: the lines only; json: a line per "
        "record with its cursor",
    )

    release = commands.add_parser(
        "release-node",
        help="remove nodekeeper's finalizers from a node that is gone for good",
        description="When a node will never come back, its agent can no longer remove its "
        "Workloads' containers, so deleting those Workloads (or the CRDs) would hang on "
        f"{FINALIZER}. This removes that finalizer from every Workload and BackupRun "
        "assigned to NODE and says what it left behind.",
    )
    release.add_argument("node", metavar="NODE", help="the node's name (spec.nodeName)")
    release.add_argument(
        "--kubeconfig", type=Path, default=None, help="kubeconfig file (default: KUBECONFIG)"
    )
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "crds":
        return _crds(args.out)
    if args.command == "release-node":
        return _release_node(args.node, args.kubeconfig)
    if args.command == "backups":
        return _backups(args)
    if args.command == "logs":
        return _logs(args)
    if args.command == "pressure":
        return _pressure(args)
    return _run(vars(args))


def _moment(text: str) -> datetime.datetime:
    moment = parse_datetime(text)
    if moment is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not RFC 3339")
    return moment


def _backups(args: argparse.Namespace) -> int:
    import os

    from nodekeeper.backups import commands
    from nodekeeper.backups.runlogs import RunLogs
    from nodekeeper.kube import client
    from nodekeeper.kube.backupruns import BackupRuns
    from nodekeeper.kube.configmaps import ConfigMaps
    from nodekeeper.kube.errors import KubeError

    kubeconfig = args.kubeconfig
    if kubeconfig is None and os.environ.get("KUBECONFIG"):
        kubeconfig = Path(os.environ["KUBECONFIG"])

    async def act() -> str | bytes:
        api = client.api_client(client.load(kubeconfig))
        try:
            runs = BackupRuns(api)
            logs = RunLogs(ConfigMaps(api))
            if args.backups_command == "list":
                filters = commands.ListFilters(
                    namespace=args.namespace,
                    policy=args.policy,
                    phase=args.phase,
                    node=args.node,
                    task_type=args.task_type,
                    since=args.since,
                    until=args.until,
                    limit=args.limit,
                    continue_token=args.continue_token,
                )
                items, token = await commands.list_runs(runs, filters)
                return commands.render(items, token, args.output)
            if args.backups_command == "show":
                return await commands.show_run(runs, args.namespace, args.run)
            if args.backups_command == "logs":
                return await commands.run_log(runs, logs, args.namespace, args.run)
            log = args.log_file.read_bytes() if args.log_file else None
            created = await commands.ingest(
                runs,
                logs,
                namespace=args.namespace,
                name=args.run,
                node=args.node,
                policy=args.policy,
                task_type=args.task_type,
                result=commands.load_result(args.result),
                log=log,
            )
            return f"backuprun {args.namespace}/{created['metadata']['name']} recorded"
        finally:
            api.close()  # type: ignore[no-untyped-call]

    try:
        output = asyncio.run(act())
    except (KubeError, commands.IngestError, OSError, ValueError) as e:
        print(f"nodekeeper: {e}", file=sys.stderr)
        return EXIT_CLUSTER
    if isinstance(output, bytes):
        sys.stdout.buffer.write(output)
        sys.stdout.buffer.flush()
    else:
        print(output)
    return 0


def _logs(args: argparse.Namespace) -> int:
    import json
    import time

    from nodekeeper.logapi import line_json
    from nodekeeper.logs.filters import FilterError, build_query
    from nodekeeper.logs.query import run_query
    from nodekeeper.logs.store import STORE_FILE, StoreError

    state_dir = args.state_dir
    if state_dir is None:
        try:
            state_dir = load({}).state_dir
        except SettingsError as e:
            print(f"nodekeeper: {e}", file=sys.stderr)
            return EXIT_SETTINGS
    path = state_dir / STORE_FILE
    if not path.exists():
        print(f"nodekeeper: no log store at {path}: pass --state-dir", file=sys.stderr)
        return EXIT_SETTINGS
    params = {
        name: getattr(args, name)
        for name in ("container", "workload", "namespace", "pod", "stream", "since", "until")
    } | {"contains": args.contains, "limit": args.limit, "cursor": args.cursor}
    try:
        query = build_query(params, time.time_ns())
    except FilterError as e:
        print(f"nodekeeper: {e}", file=sys.stderr)
        return EXIT_SETTINGS
    out = sys.stdout
    try:
        while True:
            page = run_query(path, query)
            for line in page.lines:
                if args.output == "json":
                    out.write(json.dumps(line_json(line)) + "\n")
                elif args.output == "raw":
                    out.write(line.log if line.log.endswith("\n") else line.log + "\n")
                else:
                    text = line.log.rstrip("\n")
                    out.write(f"{line.time} {line.container_name} {line.stream} {text}\n")
            out.flush()
            cursor = page.lines[-1].cursor if page.lines else query.cursor
            if not args.follow:
                if page.next_cursor is not None:
                    print(f"(more lines: --cursor {page.next_cursor})", file=sys.stderr)
                return 0
            query = dataclasses.replace(query, cursor=cursor)
            if page.next_cursor is None:
                time.sleep(0.5)
    except StoreError as e:
        print(f"nodekeeper: {e}", file=sys.stderr)
        return EXIT_CLUSTER
    except (KeyboardInterrupt, BrokenPipeError):
        return 0


def _pressure(args: argparse.Namespace) -> int:
    import json

    from nodekeeper.pressure.cgroups import CgroupReader
    from nodekeeper.pressure.psi import PsiReader
    from nodekeeper.pressure.report import build_report, render_text
    from nodekeeper.pressure.thresholds import Threshold, every_resource
    from nodekeeper.pressure.totals import TotalsReader
    from nodekeeper.pressure.usage import WorkloadKey
    from nodekeeper.runtime.containers import Containers
    from nodekeeper.runtime.errors import DockerError
    from nodekeeper.workloads.usage import running_workloads

    def workload_containers(settings: Settings) -> list[tuple[WorkloadKey, str]] | str:
        """Running Workload containers from Docker, or why there are none to show."""
        docker_host = settings.docker_host
        socket = Path(docker_host.removeprefix("unix://"))
        if docker_host.startswith("unix://") and not socket.exists():
            return f"left out: no Docker socket at {socket} (--docker-host, or --no-workloads)"
        try:
            containers = Containers.connect(docker_host, node_name=settings.node_name)
            try:
                return asyncio.run(running_workloads(containers))
            finally:
                containers.close()
        except DockerError as e:
            return f"left out: Docker at {docker_host} cannot be reached ({e})"

    names = ("proc_root", "cgroup_root", "docker_root", "docker_host")
    try:
        settings = load({name: getattr(args, name) for name in names})
    except SettingsError as e:
        print(f"nodekeeper: {e}", file=sys.stderr)
        return EXIT_SETTINGS
    report = build_report(
        PsiReader(settings.proc_root / "pressure"),
        CgroupReader(root=settings.cgroup_root, proc=settings.proc_root),
        totals=TotalsReader(disk_path=settings.docker_root),
        thresholds=every_resource(
            Threshold(
                enter_ratio=settings.pressure_enter_ratio,
                exit_ratio=settings.pressure_exit_ratio,
                sustain_seconds=settings.pressure_sustain_seconds,
            )
        ),
        workloads=(
            "left out (--no-workloads)" if args.no_workloads else workload_containers(settings)
        ),
    )
    text = json.dumps(report, indent=2, sort_keys=True) + "\n" if args.json else render_text(report)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # the reader went away (`| head`) with what it wanted, as in `nodekeeper logs`
    return 0


def _release_node(node: str, kubeconfig: Path | None) -> int:
    import os

    from nodekeeper.api import backuprun, workload
    from nodekeeper.kube import client
    from nodekeeper.kube.errors import KubeError
    from nodekeeper.kube.objects import Objects

    if kubeconfig is None and os.environ.get("KUBECONFIG"):
        kubeconfig = Path(os.environ["KUBECONFIG"])

    async def release() -> list[str]:
        api = client.api_client(client.load(kubeconfig))
        try:
            objects = Objects(api)
            lines = []
            for plural, kind in ((workload.PLURAL, "Workload"), (backuprun.PLURAL, "BackupRun")):
                refs = await objects.list_on_node(plural, node)
                released = [ref for ref in refs if await objects.release(plural, ref)]
                lines.append(
                    f"{kind}s on {node}: {len(refs)}, finalizers released: {len(released)}"
                )
                lines.extend(f"  released {kind} {listed.ref}" for listed in released)
            return lines
        finally:
            api.close()  # type: ignore[no-untyped-call]

    try:
        lines = asyncio.run(release())
    except KubeError as e:
        print(f"nodekeeper: {e}", file=sys.stderr)
        return EXIT_CLUSTER
    print("\n".join(lines))
    print(
        f"Left behind: any containers on {node} itself (label nodekeeper.io/managed=true) and "
        "their logs; if the node comes back, remove them there with "
        "`docker rm -f $(docker ps -aq --filter label=nodekeeper.io/managed=true)`."
    )
    return 0


def _crds(out: Path) -> int:
    from nodekeeper.api import crds

    for path in crds.write(out):
        print(path)
    return 0


def _run(args: dict[str, Any]) -> int:
    from nodekeeper import app, jsonlog
    from nodekeeper.kube.errors import KubeError
    from nodekeeper.runtime.errors import DockerError

    overrides = {name: args.get(name) for name in Settings.model_fields}
    try:
        settings = load(overrides)
        if not settings.offline:
            settings.require_node()
    except SettingsError as e:
        print(f"nodekeeper: {e}", file=sys.stderr)
        return EXIT_SETTINGS
    jsonlog.configure(level=settings.log_level, fmt=settings.log_format)
    try:
        if settings.offline:
            return asyncio.run(app.run_offline(settings))
        return asyncio.run(app.run(settings))
    except KubeError as e:
        print(f"nodekeeper: {e}", file=sys.stderr)
        return EXIT_CLUSTER
    except DockerError as e:
        print(f"nodekeeper: {e}; start dockerd or set --docker-host", file=sys.stderr)
        return EXIT_CLUSTER
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
