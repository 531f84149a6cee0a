"""What the agent sees now, for ``nodekeeper pressure [--json]`` and for support bundles.

One JSON-able dict (PSI per resource, the node's cgroup figures, node totals, condition states,
and each running Workload container's cgroup figures when the caller lists them) and a
plain-text rendering of it. When a condition surprises someone, this shows the figures it was
judged by, read the same way the agent reads them.

Conditions come either from a running tracker (``basis: sustained``, what the Node shows) or,
for the command line, which has no history, from the thresholds applied to the figures read now
(``basis: instantaneous``: what each would be if these figures lasted the sustain window).
"""

from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol, TypedDict

from nodekeeper.pressure.cgroups import CgroupReader, CgroupStats
from nodekeeper.pressure.psi import RESOURCES, PsiLine, PsiSample, PsiSource, Resource
from nodekeeper.pressure.thresholds import ConditionState, Threshold, instant_states
from nodekeeper.pressure.totals import NodeTotals
from nodekeeper.pressure.usage import WorkloadKey

Basis = Literal["sustained", "instantaneous"]

INSTANT_NOTE = "instantaneous: these figures judged alone, without the sustain window"


class ConditionSource(Protocol):
    def states(self) -> Iterable[ConditionState]: ...


class TotalsSource(Protocol):
    def read(self) -> NodeTotals: ...


class WorkloadsReport(TypedDict):
    skipped: str | None  # why there are no per-Workload figures, when there are none
    containers: list[dict[str, Any]]


class PressureReport(TypedDict):
    psi: dict[str, dict[str, Any] | None]
    cgroups: dict[str, Any]
    totals: dict[str, Any] | None
    conditions: list[dict[str, Any]]
    conditions_basis: Basis | None
    workloads: WorkloadsReport | None


def build_report(
    psi: PsiSource,
    cgroups: CgroupReader,
    totals: TotalsSource | None = None,
    conditions: ConditionSource | None = None,
    *,
    thresholds: Mapping[Resource, Threshold] | None = None,
    workloads: Iterable[tuple[WorkloadKey, str]] | str | None = None,
) -> PressureReport:
    """The report. ``thresholds`` (instead of ``conditions``) judges the PSI read here;
    ``workloads`` lists the containers to show, or says (a string) why they are left out."""
    samples = {resource: psi.read(resource) for resource in RESOURCES}
    node = cgroups.read(cgroups.node())
    read = totals.read() if totals is not None else None
    basis: Basis | None = None
    states: Iterable[ConditionState] = ()
    if thresholds is not None:
        basis, states = "instantaneous", instant_states(samples, thresholds)
    elif conditions is not None:
        basis, states = "sustained", conditions.states()
    return {
        "psi": {resource: _sample(sample) for resource, sample in samples.items()},
        "cgroups": {
            "layout": cgroups.layout,
            "root": str(cgroups.root),
            "node": _stats(node),
        },
        "totals": None
        if read is None
        else {
            "memory_used_ratio": read.memory_used_ratio,
            "cpu_used_ratio": read.cpu_used_ratio,
            "disk_used_ratio": read.disk_used_ratio,
            "disk_path": str(read.disk_path),
        },
        "conditions": [
            {
                "type": state.type,
                "status": state.status,
                "reason": state.reason,
                "message": state.message,
            }
            for state in states
        ],
        "conditions_basis": basis,
        "workloads": _workloads(cgroups, workloads),
    }


def _workloads(
    cgroups: CgroupReader, workloads: Iterable[tuple[WorkloadKey, str]] | str | None
) -> WorkloadsReport | None:
    if workloads is None:
        return None
    if isinstance(workloads, str):
        return {"skipped": workloads, "containers": []}
    containers = []
    for workload, container_id in sorted(
        workloads, key=lambda pair: (pair[0].namespace, pair[0].name, pair[1])
    ):
        cgroup = cgroups.container(container_id)
        containers.append(
            {
                "namespace": workload.namespace,
                "name": workload.name,
                "container_id": container_id,
                # None: no cgroup found (the container exited since Docker listed it).
                "cgroup": _stats(cgroups.read(cgroup)) if cgroup is not None else None,
            }
        )
    return {"skipped": None, "containers": containers}


def _line(line: PsiLine | None) -> dict[str, float] | None:
    if line is None:
        return None
    return {
        "avg10": line.avg10,
        "avg60": line.avg60,
        "avg300": line.avg300,
        "total_seconds": line.total_seconds,
    }


def _sample(sample: PsiSample | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    return {"some": _line(sample.some), "full": _line(sample.full)}


def _stats(stats: CgroupStats) -> dict[str, Any]:
    return {
        "memory_current_bytes": stats.memory_current_bytes,
        "memory_limit_bytes": stats.memory_limit_bytes,
        "memory_working_set_bytes": stats.memory_working_set_bytes,
        "oom_events": stats.oom_events,
        "oom_kill_events": stats.oom_kill_events,
        "cpu_quota_cores": stats.cpu_quota_cores,
        "throttled_periods": stats.throttled_periods,
        "throttled_seconds": stats.throttled_seconds,
        "psi": {resource: _sample(sample) for resource, sample in stats.psi.items()},
        "unknown": sorted(stats.unknown),
    }


def render_text(report: PressureReport) -> str:
    """The report for a terminal: one table of PSI, then cgroup, totals and conditions."""
    out = ["PSI (node)   some avg10  avg60  avg300   full avg10"]
    for resource, sample in report["psi"].items():
        if sample is None:
            out.append(f"  {resource:<10} unavailable (kernel without PSI, or psi=0)")
            continue
        some, full = sample["some"], sample["full"]
        full_avg10 = _percent(full["avg10"]) if full is not None else "-"
        out.append(
            f"  {resource:<10} {_percent(some['avg10']):>10} {_percent(some['avg60']):>6} "
            f"{_percent(some['avg300']):>7} {full_avg10:>12}"
        )
    groups = report["cgroups"]
    node = groups["node"]
    out.append(f"cgroups: {groups['layout']} at {groups['root']}")
    out.append(
        f"  node memory {_bytes(node['memory_current_bytes'])} used, "
        f"limit {_limit(node, 'memory_limit_bytes', _bytes)}; "
        f"OOM kills {_known(node['oom_kill_events'])}; "
        f"CPU quota {_limit(node, 'cpu_quota_cores', lambda v: f'{v:g} cores')}; "
        f"throttled {_known(node['throttled_periods'])} periods"
    )
    totals = report["totals"]
    if totals is not None:
        out.append(
            f"totals: memory {_percent(totals['memory_used_ratio'])} used, "
            f"CPU {_percent(totals['cpu_used_ratio'])}, "
            f"disk {totals['disk_path']} {_percent(totals['disk_used_ratio'])}"
        )
    if report["conditions"]:
        instant = report["conditions_basis"] == "instantaneous"
        out.append(f"conditions ({INSTANT_NOTE}):" if instant else "conditions:")
        for condition in report["conditions"]:
            out.append(
                f"  {condition['type']:<26} {condition['status']:<7} "
                f"{condition['reason']:<18} {condition['message']}"
            )
    workloads = report["workloads"]
    if workloads is not None:
        if workloads["skipped"] is not None:
            out.append(f"workloads: {workloads['skipped']}")
        else:
            out.append(f"workloads: {len(workloads['containers'])} running container(s)")
        for container in workloads["containers"]:
            out.append(_workload_line(container))
    return "\n".join(out) + "\n"


def _workload_line(container: Mapping[str, Any]) -> str:
    who = f"  {container['namespace']}/{container['name']} {container['container_id'][:12]}"
    stats = container["cgroup"]
    if stats is None:
        return f"{who}: no cgroup (exited?)"
    psi = ", ".join(
        f"{resource} {_percent(sample['some']['avg10'])}"
        for resource, sample in stats["psi"].items()
        if sample is not None
    )
    return (
        f"{who}: memory {_bytes(stats['memory_working_set_bytes'])} working set, "
        f"limit {_limit(stats, 'memory_limit_bytes', _bytes)}; "
        f"OOM kills {_known(stats['oom_kill_events'])}; "
        f"CPU quota {_limit(stats, 'cpu_quota_cores', lambda v: f'{v:g} cores')}; "
        f"throttled {_known(stats['throttled_periods'])} periods"
        + (f"; PSI some avg10 {psi}" if psi else "")
    )


def _percent(ratio: float | None) -> str:
    return "unknown" if ratio is None else f"{ratio:.1%}"


def _known(value: object) -> str:
    return "unknown" if value is None else str(value)


def _bytes(value: int | None) -> str:
    if value is None:
        return "unknown"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{value} B"
        size /= 1024
    return f"{value} B"


def _limit(stats: Mapping[str, Any], field: str, show: Any) -> str:
    if field in stats["unknown"]:
        return "unknown"
    value = stats[field]
    return "none" if value is None else str(show(value))
