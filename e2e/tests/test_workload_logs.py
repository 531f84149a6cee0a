"""A Workload's log is in the node's log store before its container goes (the removal handshake)."""

import json
import subprocess
import sys

from e2e.tests.conftest import AgentProcess, Kubectl, workload

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
