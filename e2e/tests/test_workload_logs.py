"""A Workload's log is in the node's log store before its container goes (the removal handshake)."""

import json
import subprocess
import sys

import requests

from e2e.tests.conftest import Kubectl, workload
from tests.support.agent import AgentProcess
from tests.support.waiting import eventually_sync

LINES = 3000


def stored_lines(agent: AgentProcess, name: str, namespace: str) -> list[str]:
    """Every line the agent stored for the Workload, read as a user would: `nodekeeper logs`."""
    lines: list[str] = []
    cursor: list[str] = []
    while True:
        command = [sys.executable, "-m", "nodekeeper.cli", "logs", "-w", name, "-n", namespace]
        result = subprocess.run(
            [
                *command,
                "--state-dir",
                str(agent.state_dir),
                "--limit",
                "10000",
                "-o",
                "json",
                *cursor,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        page = [json.loads(line) for line in result.stdout.splitlines()]
        lines.extend(entry["log"].rstrip("\n") for entry in page)
        more = result.stderr.strip()
        if not more.startswith("(more lines: --cursor "):
            return lines
        cursor = ["--cursor", more.removeprefix("(more lines: --cursor ").rstrip(")")]


def test_deleting_a_workload_keeps_its_last_line(
    kubectl: Kubectl, agent: AgentProcess, namespace: str, node: str
) -> None:
    # A burst of numbered lines, then the last one, then nothing until it is killed.
    script = f"i=0; while [ $i -lt {LINES} ]; do echo n$i; i=$((i+1)); done; echo last; sleep 600"
    kubectl.apply(workload("chatty", namespace, node, args=[script]))
    kubectl.run(
        "wait", "--for=condition=Ready", "workload/chatty", "-n", namespace, "--timeout=60s"
    )
    timeouts_before = agent.metric("nodekeeper_log_drain_timeouts_total")

    kubectl.run("delete", "workload", "chatty", "-n", namespace, "--timeout=90s")

    # Deleted means removed, and removed means drained: no waiting for the store here.
    lines = stored_lines(agent, "chatty", namespace)
    assert lines == [f"n{i}" for i in range(LINES)] + ["last"]
    assert agent.metric("nodekeeper_log_drain_timeouts_total") == timeouts_before


def test_the_agents_log_api_answers_only_a_permitted_caller(
    kubectl: Kubectl, agent: AgentProcess, namespace: str, node: str
) -> None:
    kubectl.apply(workload("talker", namespace, node, args=["echo via-api; sleep 600"]))
    kubectl.run(
        "wait", "--for=condition=Ready", "workload/talker", "-n", namespace, "--timeout=60s"
    )
    role = f"{namespace}-log-reader"
    kubectl.run("create", "serviceaccount", "reader", "-n", namespace)
    # kubectl create clusterrole checks resources against discovery; nodes/logs in
    # nodekeeper.io is a permission only (the chart's nodekeeper-log-reader role grants it).
    rule = {"apiGroups": ["nodekeeper.io"], "resources": ["nodes/logs"], "verbs": ["get"]}
    kubectl.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": [rule],
        }
    )
    try:
        kubectl.run(
            "create", "clusterrolebinding", role, f"--clusterrole={role}",
            f"--serviceaccount={namespace}:reader",
        )  # fmt: skip
        token = kubectl.run("create", "token", "reader", "-n", namespace).stdout.strip()
        url = f"http://127.0.0.1:{agent.port}/api/v1/logs"
        query = {"workload": "talker", "namespace": namespace}

        assert requests.get(url, params=query, timeout=10).status_code == 401

        def answered() -> list[str] | None:
            response = requests.get(
                url, params=query, headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
            assert response.status_code == 200, response.text
            return [entry["log"] for entry in response.json()["lines"]] or None

        lines = eventually_sync(answered, what="the Workload's line through the API", seconds=30)
        assert lines == ["via-api\n"]
        bad = requests.get(
            url, params={"since": "yesterday"}, headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )  # fmt: skip
        assert bad.status_code == 400
        assert "RFC 3339" in bad.json()["error"]
    finally:
        kubectl.run("delete", "clusterrolebinding", role, "--ignore-not-found", check=False)
        kubectl.run("delete", "clusterrole", role, "--ignore-not-found", check=False)
