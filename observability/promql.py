"""Every PromQL expression the chart ships, and the metrics each one reads.

The rules file and the dashboards are the two sources; the unit tests check each expression's
metrics against docs/reference.md, and the e2e test runs each one against a real Prometheus.
Metric names come from a real PromQL parser (promql-parser), not from a regex.
"""

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "charts" / "nodekeeper" / "rules" / "nodekeeper.rules.yaml"
DASHBOARDS = ROOT / "charts" / "nodekeeper" / "dashboards"
REFERENCE = ROOT / "docs" / "reference.md"

# Series Prometheus makes itself for every target; not the agent's to document.
SYNTHETIC = frozenset({"up"})

# Grafana's variables, as a dashboard would expand them with every node selected.
GRAFANA_VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "6h",
    "node": ".*",
}


@dataclass(frozen=True)
class Expression:
    """One PromQL expression and where it lives (for messages)."""

    where: str
    text: str


def rule_expressions(path: Path = RULES) -> list[Expression]:
    document = yaml.safe_load(path.read_text())
    return [
        Expression(f"{path.name}: {rule.get('alert') or rule.get('record')}", rule["expr"])
        for group in document["groups"]
        for rule in group["rules"]
    ]


def _label_values(query: str) -> str:
    """Grafana's ``label_values(expr, label)`` as the PromQL whose label values it lists."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query, flags=re.DOTALL)
    if match is None:
        return query
    return f"group by ({match.group(2)}) ({match.group(1)})"


def dashboard_expressions(folder: Path = DASHBOARDS) -> list[Expression]:
    found = []
    for path in sorted(folder.glob("*.json")):
        board = json.loads(path.read_text())
        for variable in board.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                query = variable["query"]
                text = query if isinstance(query, str) else query.get("query", "")
                found.append(Expression(f"{path.name}: ${variable['name']}", _label_values(text)))
        for panel in _panels(board.get("panels", [])):
            for target in panel.get("targets", []):
                if "expr" in target:
                    where = f"{path.name}: {panel.get('title')} ({target.get('refId')})"
                    found.append(Expression(where, target["expr"]))
    return found


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows hold their panels


def all_expressions() -> list[Expression]:
    return rule_expressions() + dashboard_expressions()


def expand(text: str, values: Mapping[str, str] = GRAFANA_VARIABLES) -> str:
    """Grafana's ``$name``, ``${name}`` and ``[[name]]`` replaced; an unknown one raises."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise KeyError(f"no value for the Grafana variable ${name}")
        return values[name]

    # A name starts with a letter or _: label_replace's "$1" is PromQL's, not Grafana's.
    name = r"[A-Za-z_]\w*"
    return re.sub(rf"\$\{{({name})(?::\w+)?\}}|\$({name})|\[\[({name})\]\]", value, text)


def metric_names(text: str) -> set[str]:
    """The metric names an expression selects; raises ValueError when it does not parse."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__" and str(matcher.op) == "MatchOp.Equal":
                    names.add(matcher.value)

    promql_parser.walk(promql_parser.parse(text), visit)
    return names


def documented_metrics(path: Path = REFERENCE) -> dict[str, str]:
    """docs/reference.md's metrics table: name -> type (counter, gauge, histogram, ...)."""
    body = path.read_text().split("## Metrics\n", 1)[1].split("\n## ", 1)[0]
    return {
        name: kind.split()[0]
        for name, kind in re.findall(r"^\| `([^`]+)` \| ([^|]+?) \|", body, flags=re.MULTILINE)
    }


def exposed_series(documented: Mapping[str, str]) -> dict[str, str]:
    """Series names as Prometheus stores them -> the documented metric they belong to.

    Histograms are stored as ``_bucket``, ``_sum``, ``_count`` (and ``_created``); counters
    (documented with their ``_total``) also get ``_created`` from prometheus_client.
    """
    series: dict[str, str] = {}
    for name, kind in documented.items():
        series[name] = name
        if kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count", "_created"):
                series[name + suffix] = name
        elif kind == "counter":
            series[name.removesuffix("_total") + "_created"] = name
    return series


def probe_name(series: str, documented: Mapping[str, str]) -> str:
    """The series to look for in Prometheus: a histogram by its ``_bucket`` series."""
    if documented.get(series) == "histogram":
        return series + "_bucket"
    return series
