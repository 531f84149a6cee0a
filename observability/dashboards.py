"""The chart's Grafana dashboards, as code (grafana-foundation-sdk, pinned in pyproject).

`make dashboards` (``python -m observability.dashboards``) writes
charts/nodekeeper/dashboards/*.json; tests/observability/test_dashboards.py fails when the
committed files differ from what this module produces, so edit here, never the JSON.

Every dashboard says in its description which questions it answers. Queries join each series
with ``nodekeeper_agent_info`` on (job, instance): that adds the agent's own ``node`` label,
whatever the ServiceMonitor relabels, and lets the ``node`` variable filter every panel.
"""

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# The SDK warns on import that the classic dashboard model has a successor (schema v2). The
# classic JSON is what every Grafana and the Grafana sidecar provision, so it is kept on purpose.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from grafana_foundation_sdk.builders import dashboard as db
    from grafana_foundation_sdk.builders import stat, table, timeseries
    from grafana_foundation_sdk.builders.common import ReduceDataOptions, StackingConfig
    from grafana_foundation_sdk.builders.prometheus import Dataquery
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.common import DataSourceRef, StackingMode
    from grafana_foundation_sdk.models.dashboard import (
        DynamicConfigValue,
        Threshold,
        ThresholdsMode,
        VariableOption,
        VariableRefresh,
        VariableSort,
    )
    from grafana_foundation_sdk.models.prometheus import PromQueryFormat

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "charts" / "nodekeeper" / "dashboards"

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# The agent's own node label, joined onto any series of the same scrape target.
INFO = 'nodekeeper_agent_info{node=~"$node"}'
JOIN = f"* on (job, instance) group_left (node) {INFO}"
TAGS = ["nodekeeper"]


def on_nodes(expr: str, by: Sequence[str] = ("node",)) -> str:
    """``expr`` restricted to the selected nodes, summed by ``by`` (empty: one total)."""
    grouping = f" by ({', '.join(by)})" if by else ""
    return f"sum{grouping} ({expr} {JOIN})"


def rate(metric: str) -> str:
    return f"rate({metric}[$__rate_interval])"


def increase(metric: str, window: str = "$__rate_interval") -> str:
    return f"increase({metric}[{window}])"


def quantile(q: float, histogram: str, by: Sequence[str] = ("node",)) -> str:
    return f"histogram_quantile({q}, {on_nodes(rate(histogram + '_bucket'), (*by, 'le'))})"


def query(expr: str, legend: str = "", ref: str = "A") -> Dataquery:
    built = Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    return built.legend_format(legend) if legend else built


def graph(
    title: str,
    description: str,
    targets: Sequence[tuple[str, str]],
    unit: str = "short",
    *,
    width: int = 12,
    stacked: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .span(width)
        .height(8)
        .fill_opacity(10)
    )
    if stacked:
        panel = panel.stacking(StackingConfig().mode(StackingMode.NORMAL))
    for index, (expr, legend) in enumerate(targets):
        panel = panel.with_target(query(expr, legend, ref=chr(ord("A") + index)))
    return panel


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


def single(
    title: str, description: str, expr: str, unit: str = "none", *, red_above: float | None = 0
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(6)
        .height(4)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(query(expr))
    )
    if red_above is not None:
        panel = panel.thresholds(thresholds((None, "green"), (red_above + 1e-9, "red")))
    return panel


def variables() -> list[db.DatasourceVariable | db.QueryVariable]:
    everything = VariableOption(selected=True, text="All", value="$__all")
    return [
        db.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        db.QueryVariable("node")
        .label("Node")
        .description("Nodes, from the agents' nodekeeper_agent_info.")
        .datasource(DATASOURCE)
        .query("label_values(nodekeeper_agent_info, node)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(everything),
    ]


def base(uid: str, title: str, questions: Sequence[str]) -> db.Dashboard:
    dashboard = (
        db.Dashboard(title)
        .uid(uid)
        .description("Answers: " + " ".join(questions))
        .tags(TAGS)
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .editable()
    )
    for variable in variables():
        dashboard = dashboard.with_variable(variable)
    return dashboard


@dataclass(frozen=True)
class Board:
    """One dashboard: its file name, the questions it answers, and how to build it."""

    name: str
    title: str
    questions: tuple[str, ...]
    build: Callable[[db.Dashboard], db.Dashboard]


def node_and_logs(dashboard: db.Dashboard) -> db.Dashboard:
    lost_bytes = "nodekeeper_log_lost_bytes_total"
    lost_files = "nodekeeper_log_lost_files_total"
    return (
        dashboard.with_row(db.Row("Overview"))
        .with_panel(
            single(
                "Agents reporting",
                "Agents whose metrics Prometheus has now, among the selected nodes.",
                f"count({INFO})",
                red_above=None,
            )
        )
        .with_panel(
            single(
                "Log bytes lost",
                "Bytes of container logs Docker rotated or deleted before the agent read them, "
                "in the dashboard's time range. Anything above 0 breaks the no-loss promise.",
                on_nodes(increase(lost_bytes, "$__range"), ()),
                "bytes",
            )
        )
        .with_panel(
            single(
                "Log files lost",
                "Whole log files that went before the agent read them, in the time range.",
                on_nodes(increase(lost_files, "$__range"), ()),
            )
        )
        .with_panel(
            single(
                "Pressure conditions True",
                "Nodekeeper*Pressure conditions True now, over the selected nodes.",
                on_nodes('nodekeeper_node_condition{status="True"}', ()),
            )
        )
        .with_row(db.Row("Log pipeline"))
        .with_panel(
            graph(
                "Log lag",
                "Bytes written by containers that the agent has not read yet. A line that "
                "Docker rotates away while still unread is lost: a lag that keeps growing "
                "is the early warning (alert NodekeeperLogLagGrowing).",
                [(on_nodes("nodekeeper_log_lag_bytes"), "{{node}}")],
                "bytes",
            )
        )
        .with_panel(
            graph(
                "Log data lost",
                "Bytes and files lost per node (alert NodekeeperLogLinesLost).",
                [
                    (on_nodes(increase(lost_bytes)), "{{node}} bytes"),
                    (on_nodes(increase(lost_files)), "{{node}} files"),
                ],
            )
        )
        .with_panel(
            graph(
                "Lines read",
                "Container log lines read per second.",
                [(on_nodes(rate("nodekeeper_log_lines_total")), "{{node}}")],
                "short",
            )
        )
        .with_panel(
            graph(
                "Bytes read",
                "Container log bytes read per second.",
                [(on_nodes(rate("nodekeeper_log_bytes_total")), "{{node}}")],
                "Bps",
            )
        )
        .with_panel(
            graph(
                "Line latency",
                "From the timestamp Docker gave a line to the line being stored (p50, p99).",
                [
                    (quantile(0.5, "nodekeeper_log_latency_seconds"), "{{node}} p50"),
                    (quantile(0.99, "nodekeeper_log_latency_seconds"), "{{node}} p99"),
                ],
                "s",
            )
        )
        .with_panel(
            graph(
                "Store write time",
                "Time a batch takes to become durable in the local store (p99).",
                [(quantile(0.99, "nodekeeper_log_store_write_seconds"), "{{node}} p99")],
                "s",
            )
        )
        .with_panel(
            graph(
                "Store size and pauses",
                "The local store's size, and 1 while it is paused (alert "
                "NodekeeperLogStorePaused): nothing more is read until it resumes.",
                [
                    (on_nodes("nodekeeper_log_store_bytes"), "{{node}} bytes"),
                    (on_nodes("nodekeeper_log_store_paused"), "{{node}} paused"),
                ],
                "bytes",
            ).override_by_regexp(".* paused", [DynamicConfigValue(id_val="unit", value="none")])
        )
        .with_panel(
            graph(
                "Files watched",
                "Container log files the agent follows now.",
                [(on_nodes("nodekeeper_log_files_watched"), "{{node}}")],
            )
        )
        .with_panel(
            graph(
                "Rotations and truncations",
                "Log files rotated or truncated under the agent, per second.",
                [
                    (on_nodes(rate("nodekeeper_log_rotations_total")), "{{node}} rotations"),
                    (on_nodes(rate("nodekeeper_log_truncations_total")), "{{node}} truncations"),
                ],
            )
        )
        .with_panel(
            graph(
                "Line repairs",
                "Lines that were not plain: malformed JSON skipped, 16 KiB partials merged, "
                "over-long lines truncated; per second.",
                [
                    (on_nodes(rate("nodekeeper_log_malformed_lines_total")), "{{node}} malformed"),
                    (
                        on_nodes(rate("nodekeeper_log_partial_merges_total")),
                        "{{node}} partials merged",
                    ),
                    (on_nodes(rate("nodekeeper_log_truncated_lines_total")), "{{node}} truncated"),
                ],
            )
        )
        .with_panel(
            graph(
                "Watch fallbacks and drain timeouts",
                "inotify watches that fell back to polling, and container removals that stopped "
                "waiting for the log to drain; both should stay at 0.",
                [
                    (
                        on_nodes(increase("nodekeeper_log_watch_fallbacks_total")),
                        "{{node}} watch fallbacks",
                    ),
                    (
                        on_nodes(increase("nodekeeper_log_drain_timeouts_total")),
                        "{{node}} drain timeouts",
                    ),
                ],
            )
        )
        .with_row(db.Row("Node pressure"))
        .with_panel(
            graph(
                "Pressure conditions",
                "1 while a Nodekeeper*Pressure condition is True on the node (alert "
                "NodekeeperNodePressure); new Workloads are not admitted meanwhile.",
                [
                    (
                        on_nodes('nodekeeper_node_condition{status="True"}', ("node", "condition")),
                        "{{node}} {{condition}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "PSI some avg10",
                "Share of the last 10 s in which some task stalled on the resource; the "
                "conditions turn True above the pressure_enter_ratio setting (0.10).",
                [
                    (
                        on_nodes(
                            'nodekeeper_node_psi_ratio{line="some", window="avg10"}',
                            ("node", "resource"),
                        ),
                        "{{node}} {{resource}}",
                    )
                ],
                "percentunit",
            )
        )
        .with_panel(
            graph(
                "PSI stall time",
                "Seconds stalled per second, from the PSI totals (some and full).",
                [
                    (
                        on_nodes(
                            rate("nodekeeper_node_psi_stall_seconds_total"),
                            ("node", "resource", "line"),
                        ),
                        "{{node}} {{resource}} {{line}}",
                    )
                ],
                "percentunit",
            )
        )
        .with_row(db.Row("Agent"))
        .with_panel(
            graph(
                "Agent memory",
                "The agent's memory use against its limit; self-protection slows the log "
                "readers at 85 % (alert NodekeeperAgentMemoryHigh).",
                [
                    (on_nodes("nodekeeper_agent_memory_bytes"), "{{node}} used"),
                    (on_nodes("nodekeeper_agent_memory_limit_bytes"), "{{node}} limit"),
                ],
                "bytes",
            )
        )
        .with_panel(
            graph(
                "Self-protection level",
                "0 normal, 1 warn (70 %), 2 slow (85 %), 3 critical (90 % of the limit).",
                [(on_nodes("nodekeeper_agent_memory_level"), "{{node}}")],
            )
        )
    )


def workloads(dashboard: db.Dashboard) -> db.Dashboard:
    phases = "nodekeeper_workloads"
    restarts = "nodekeeper_workload_restarts_total"
    return (
        dashboard.with_row(db.Row("Overview"))
        .with_panel(
            single(
                "Running",
                "Workloads Running now on the selected nodes.",
                on_nodes(f'{phases}{{phase="Running"}}', ()),
                red_above=None,
            )
        )
        .with_panel(
            single(
                "Pending",
                "Workloads waiting to start: not admitted yet (pressure, resources) or no "
                "container yet.",
                on_nodes(f'{phases}{{phase="Pending"}}', ()),
                red_above=None,
            )
        )
        .with_panel(
            single(
                "Failed",
                "Workloads Failed now (backoff limit reached, image not allowed, ...).",
                on_nodes(f'{phases}{{phase="Failed"}}', ()),
            )
        )
        .with_panel(
            single(
                "Restarts",
                "Container restarts by restart policy in the time range.",
                on_nodes(increase(restarts, "$__range"), ()),
                red_above=3,
            )
        )
        .with_row(db.Row("Workloads"))
        .with_panel(
            graph(
                "Restarts per node",
                "Containers restarted by their restart policy. More than 3 in 15 minutes fires "
                "NodekeeperWorkloadCrashLooping; `kubectl get wl -A "
                "--field-selector spec.nodeName=NODE` shows which Workload (RESTARTS).",
                [(on_nodes(increase(restarts)), "{{node}}")],
            )
        )
        .with_panel(
            graph(
                "Workloads by phase",
                "Workloads on the selected nodes, by phase.",
                [(on_nodes(phases, ("phase",)), "{{phase}}")],
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Refusals and errors by code",
                "Handler runs that ended in an error or a refusal, by stable code "
                "(docs/reference.md): NodeUnderPressure and InsufficientResources are the "
                "admission gate, ImageNotFound an image missing on the node.",
                [
                    (
                        on_nodes(
                            increase("nodekeeper_handler_errors_total"), ("node", "kind", "code")
                        ),
                        "{{node}} {{kind}} {{code}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Handler time",
                "Time a create/update/resume handler took (p99), by kind.",
                [
                    (
                        quantile(0.99, "nodekeeper_reconcile_duration_seconds", ("node", "kind")),
                        "{{node}} {{kind}}",
                    )
                ],
                "s",
            )
        )
        .with_panel(
            graph(
                "Status writes",
                "Status writes per second by outcome: applied (sent), unchanged (nothing to "
                "send), failed. A steady stream of applied writes with nothing changing is a bug.",
                [
                    (
                        on_nodes(rate("nodekeeper_status_writes_total"), ("kind", "outcome")),
                        "{{kind}} {{outcome}}",
                    )
                ],
                width=24,
            )
        )
    )


def backupruns(dashboard: db.Dashboard) -> db.Dashboard:
    runs = "nodekeeper_backup_runs_total"
    age = "time() - max by (namespace, policy) (nodekeeper_backup_last_success_timestamp_seconds)"
    return (
        dashboard.with_row(db.Row("Policies"))
        .with_panel(
            table.Panel()
            .title("Time since the last successful run, per policy")
            .description(
                "Across all nodes (a policy's runs may move between nodes). Red past 24 h, "
                "when NodekeeperNoRecentBackup fires."
            )
            .datasource(DATASOURCE)
            .unit("s")
            .span(12)
            .height(8)
            .thresholds(thresholds((None, "green"), (86400, "red")))
            .with_target(query(age).instant().format(PromQueryFormat.TABLE))
        )
        .with_panel(
            graph(
                "Failures by reason",
                "BackupRuns that ended without success, by the reason of their Completed "
                "condition (alert NodekeeperBackupFailed).",
                [
                    (
                        on_nodes(increase("nodekeeper_backup_errors_total"), ("node", "reason")),
                        "{{node}} {{reason}}",
                    )
                ],
            )
        )
        .with_row(db.Row("Runs"))
        .with_panel(
            single(
                "Succeeded",
                "Runs that succeeded in the time range.",
                on_nodes(increase(f'{runs}{{phase="Succeeded"}}', "$__range"), ()),
                red_above=None,
            )
        )
        .with_panel(
            single(
                "Partially failed",
                "Runs where restic could not read some files, in the time range.",
                on_nodes(increase(f'{runs}{{phase="PartiallyFailed"}}', "$__range"), ()),
            )
        )
        .with_panel(
            single(
                "Failed",
                "Runs that failed in the time range.",
                on_nodes(increase(f'{runs}{{phase="Failed"}}', "$__range"), ()),
            )
        )
        .with_panel(
            single(
                "Data added",
                "Bytes restic added to the repositories in the time range.",
                on_nodes(increase("nodekeeper_backup_data_added_bytes_total", "$__range"), ()),
                "bytes",
                red_above=None,
            )
        )
        .with_panel(
            graph(
                "Runs by phase",
                "Runs that ended, by phase and source (executed here, or ingested).",
                [
                    (
                        on_nodes(increase(runs), ("task_type", "phase", "source")),
                        "{{task_type}} {{phase}} ({{source}})",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Run duration",
                "How long runs took, by task type (p50, p99).",
                [
                    (
                        quantile(0.5, "nodekeeper_backup_duration_seconds", ("task_type",)),
                        "{{task_type}} p50",
                    ),
                    (
                        quantile(0.99, "nodekeeper_backup_duration_seconds", ("task_type",)),
                        "{{task_type}} p99",
                    ),
                ],
                "s",
            )
        )
        .with_panel(
            graph(
                "Data added per policy",
                "Bytes restic reported as added to the repository, per policy.",
                [
                    (
                        on_nodes(
                            increase("nodekeeper_backup_data_added_bytes_total"),
                            ("namespace", "policy"),
                        ),
                        "{{namespace}}/{{policy}}",
                    )
                ],
                "bytes",
            )
        )
        .with_panel(
            graph(
                "Stored log size",
                "Size of the logs stored with each run (p99); past backup_log_cap_bytes only "
                "the head and tail are kept.",
                [(quantile(0.99, "nodekeeper_backup_log_bytes", ()), "p99")],
                "bytes",
            )
        )
    )


BOARDS = (
    Board(
        "node-and-logs",
        "nodekeeper / Node and logs",
        (
            "Is any node losing log lines or falling behind?",
            "How fast do lines reach the store?",
            "Which nodes are under pressure and why?",
            "Is an agent near its memory limit?",
        ),
        node_and_logs,
    ),
    Board(
        "workloads",
        "nodekeeper / Workloads",
        (
            "Are Workloads crash-looping, and on which node?",
            "How many Workloads run where, in which phase?",
            "Why are Workloads refused or failing?",
        ),
        workloads,
    ),
    Board(
        "backupruns",
        "nodekeeper / BackupRuns",
        (
            "Did every backup policy succeed recently?",
            "Which runs fail, and why?",
            "How long do runs take and how much data do they add?",
        ),
        backupruns,
    ),
)


def render(board: Board) -> str:
    """The dashboard's JSON as committed: sorted keys, 2-space indent, a final newline."""
    built = board.build(base(f"nodekeeper-{board.name}", board.title, board.questions)).build()
    return JSONEncoder(sort_keys=True, indent=2).encode(built) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the JSON files")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for board in BOARDS:
        path = args.out / f"{board.name}.json"
        path.write_text(render(board))
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
