"""Every PromQL expression of the dashboards and rules parses and reads only documented metrics
(docs/reference.md); the e2e test (e2e/tests/test_prometheus.py) then runs them for real.
"""

import pytest

from observability import promql

DOCUMENTED = promql.documented_metrics()
SERIES = promql.exposed_series(DOCUMENTED)
EXPRESSIONS = promql.all_expressions()


def test_expressions_are_found_in_both_sources() -> None:
    wheres = {expression.where.split(":")[0] for expression in EXPRESSIONS}
    assert wheres == {
        "nodekeeper.rules.yaml",
        "node-and-logs.json",
        "workloads.json",
        "backupruns.json",
    }


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=lambda expression: expression.where)
def test_an_expression_parses_and_reads_only_documented_metrics(
    expression: promql.Expression,
) -> None:
    names = promql.metric_names(promql.expand(expression.text))
    assert names, "an expression that reads no metric"
    undocumented = names - set(SERIES) - promql.SYNTHETIC
    assert undocumented == set(), f"not in docs/reference.md: {sorted(undocumented)}"


def test_metric_names_come_from_selectors_not_from_labels_or_functions() -> None:
    text = (
        'histogram_quantile(0.99, sum by (node, le) (rate(a_seconds_bucket{le!="+Inf"}[5m])'
        " * on (job, instance) group_left (node) info_metric))"
        ' or count({__name__="b_total"}) or absent(up{job=~"x.*"}) or time() - c offset 1h'
    )
    assert promql.metric_names(text) == {"a_seconds_bucket", "info_metric", "b_total", "up", "c"}


def test_a_broken_expression_is_an_error() -> None:
    with pytest.raises(ValueError, match="unclosed left parenthesis"):
        promql.metric_names("sum(rate(x[5m])")


def test_grafana_variables_are_expanded_and_an_unknown_one_is_an_error() -> None:
    assert (
        promql.expand('rate(x{node=~"$node"}[$__rate_interval]) + y{n="${node}"} [[node]]')
        == 'rate(x{node=~".*"}[5m]) + y{n=".*"} .*'
    )
    assert promql.expand('label_replace(x, "a", "$1", "b", "(.*)")') == (
        'label_replace(x, "a", "$1", "b", "(.*)")'
    )
    with pytest.raises(KeyError, match="cluster"):
        promql.expand("x[$cluster]")


def test_histograms_and_counters_map_to_the_series_prometheus_stores() -> None:
    series = promql.exposed_series({"h_seconds": "histogram", "c_total": "counter", "g": "gauge"})
    assert series == {
        "h_seconds": "h_seconds",
        "h_seconds_bucket": "h_seconds",
        "h_seconds_sum": "h_seconds",
        "h_seconds_count": "h_seconds",
        "h_seconds_created": "h_seconds",
        "c_total": "c_total",
        "c_created": "c_total",
        "g": "g",
    }


def test_the_reference_table_is_read_with_types() -> None:
    assert DOCUMENTED["nodekeeper_agent_info"] == "gauge"
    assert DOCUMENTED["nodekeeper_workload_restarts_total"] == "counter"
    assert DOCUMENTED["nodekeeper_reconcile_duration_seconds"] == "histogram"
