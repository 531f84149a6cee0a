"""Build tooling for what the chart ships to Prometheus and Grafana: the dashboards generator
and the PromQL helpers the tests use to check every expression against the documented metrics.

Not part of the agent (it is never imported by nodekeeper), so it lives outside operator/.
"""
