"""A real Prometheus scrapes real agents; every PromQL expression of the chart's dashboards and
alert rules runs against it, and every metric they read must have series there.

Prometheus is Debian's `prometheus` binary with a config of its own in a temporary folder
(1 s scrapes, its own TSDB, a free port). It scrapes the session's agent (Workloads run on its
node) and a second agent for a node name of its own, which records the BackupRuns made here
(away from the session agent, as test_backupruns.py does) and has a memory limit set, so that
nodekeeper_agent_memory_limit_bytes exists. Labelled metrics appear only once something
happened, so the module makes it happen: a running, a crash-looping and an image-less
Workload, a succeeded (executed, with a restic summary) and a failed (ingested) BackupRun.
A metric that still has no series is reported by name with the expressions that read it.
"""

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from e2e.tests.conftest import TEST_IMAGE, Kubectl, workload
from e2e.tests.identity import AgentIdentity
from observability import promql
from tests.support.agent import AgentProcess
from tests.support.net import free_port
from tests.support.processes import stop_gently
from tests.support.waiting import eventually_sync

OWN_NODE = f"e2e-prometheus-{uuid.uuid4().hex[:6]}"
# Grafana's variables as a dashboard would expand them, sized for 1 s scrapes.
VARIABLES = {**promql.GRAFANA_VARIABLES, "__rate_interval": "30s", "__range": "10m"}
RESTIC_SUMMARY = {
    "message_type": "summary",
    "files_new": 1,
    "files_changed": 0,
    "files_unmodified": 0,
    "data_added": 2048,
    "total_bytes_processed": 4096,
    "snapshot_id": "0a1b2c3d",
}


class Prometheus:
    """`prometheus` as a process with its own config and storage; stopped by stop()."""

    def __init__(self, folder: Path, targets: list[str]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("no prometheus binary: apt-get install prometheus (.ci/run does it)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "scrape_configs": [
                {"job_name": "nodekeeper", "static_configs": [{"targets": targets}]}
            ],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = folder / "prometheus.log"
        self._file = self.log.open("w")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, seconds: float = 30) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.log.read_text()[-2000:]}")
            try:
                return requests.get(f"{self.url}/-/ready", timeout=1).ok
            except requests.RequestException:
                return False

        eventually_sync(ready, what="prometheus ready", seconds=seconds)

    def query(self, expr: str) -> dict[str, Any]:
        """The API's answer to an instant query: {"status": ..., "data"|"error": ...}."""
        answer: dict[str, Any] = requests.get(
            f"{self.url}/api/v1/query", params={"query": expr}, timeout=10
        ).json()
        return answer

    def series(self, expr: str) -> list[dict[str, Any]]:
        answer = self.query(expr)
        assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def stop(self) -> None:
        stop_gently(self.process)
        self._file.close()


@pytest.fixture(scope="module")
def own_agent(
    agent_identity: AgentIdentity,
    crds: None,
    kubectl: Kubectl,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AgentProcess]:
    process = AgentProcess.for_node(
        OWN_NODE,
        agent_identity.kubeconfig(OWN_NODE),
        tmp_path_factory.mktemp("prometheus-agent"),
        *("--memory-limit-bytes", str(4 * 1024**3)),
        *("--admission-cpu-ratio", "1", "--pressure-enter-ratio", "0.95"),
        *("--pressure-exit-ratio", "0.9"),
    )
    try:
        process.start()
        yield process
    finally:
        # While the agent still runs, so it releases its finalizers.
        kubectl.run(
            "delete",
            "br",
            "-A",
            f"--field-selector=spec.nodeName={OWN_NODE}",
            "--timeout=60s",
            check=False,
        )
        process.stop()


@pytest.fixture(scope="module")
def prometheus(
    agent: AgentProcess, own_agent: AgentProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    folder = tmp_path_factory.mktemp("prometheus")
    server = Prometheus(folder, [f"127.0.0.1:{agent.port}", f"127.0.0.1:{own_agent.port}"])
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        print(f"prometheus log: {server.log}")


@pytest.fixture(scope="module")
def activity(
    kubectl: Kubectl, agent: AgentProcess, own_agent: AgentProcess, node: str
) -> Iterator[str]:
    """Workloads and BackupRuns whose ends create the labelled series; yields the namespace."""
    namespace = f"e2e-prom-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", namespace)
    try:
        kubectl.apply(workload("steady", namespace, node))
        kubectl.apply(
            workload(
                "crashing",
                namespace,
                node,
                args=["echo boom; exit 1"],
                restartPolicy="Always",
                backoff={"initialSeconds": 1, "maxSeconds": 2, "maxRetries": 50},
            )
        )
        kubectl.apply(workload("imageless", namespace, node, image="nodekeeper-test/absent:0"))
        kubectl.apply(backup_run("succeeds", namespace, script=succeeding_script()))
        kubectl.apply(
            backup_run(
                "failed-elsewhere",
                namespace,
                result={
                    "taskId": "t1",
                    "status": "Failed",
                    "durationSeconds": 3,
                    "errorMessage": "Fatal: wrong password",
                },
            )
        )
        for name in ("succeeds", "failed-elsewhere"):
            kubectl.run(
                "wait", "--for=condition=Completed", f"br/{name}", "-n", namespace, "--timeout=90s"
            )
        kubectl.run(
            "wait", "--for=condition=Ready", "workload/steady", "-n", namespace, "--timeout=90s"
        )
        eventually_sync(
            lambda: (agent.metric("nodekeeper_workload_restarts_total") or 0) >= 2,
            what="two restarts of the crash-looping Workload",
            seconds=60,
        )
        yield namespace
    finally:
        kubectl.run(
            "delete", "workloads,backupruns", "--all", "-n", namespace, "--timeout=60s", check=False
        )
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)


def backup_run(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"nodeName": OWN_NODE, "policy": "observed", "taskType": "backup"}
    if "script" in spec:
        body |= {"image": TEST_IMAGE, "command": ["/bin/sh", "-c"], "args": [spec.pop("script")]}
    return {
        "apiVersion": "nodekeeper.io/v1alpha1",
        "kind": "BackupRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body | spec,
    }


def succeeding_script() -> str:
    return f"echo '{json.dumps(RESTIC_SUMMARY)}'; exit 0"


def referenced() -> dict[str, list[str]]:
    """Every metric name the dashboards and rules read -> where it is read."""
    found: dict[str, list[str]] = {}
    for expression in promql.all_expressions():
        for name in promql.metric_names(promql.expand(expression.text, VARIABLES)):
            found.setdefault(name, []).append(expression.where)
    return found


def missing_metrics(server: Prometheus, names: list[str]) -> list[str]:
    return [name for name in names if not server.series(f'count({{__name__="{name}"}})')]


@pytest.mark.timeout(300)
def test_every_dashboard_and_alert_expression_runs_on_series_that_exist(
    prometheus: Prometheus,
    activity: str,
    kubectl: Kubectl,
    own_agent: AgentProcess,
) -> None:
    # A few scrapes of both agents after everything above happened.
    scraped_since = time.time()
    eventually_sync(
        lambda: (
            len(prometheus.series('count_over_time(up{job="nodekeeper"}[1m]) >= 5')) == 2
            and time.time() - scraped_since > 5
        ),
        what="five scrapes of both agents",
        seconds=60,
    )
    names = sorted(referenced())
    # The last series may need one more scrape; then whatever is missing is missing.
    deadline = time.monotonic() + 20
    missing = missing_metrics(prometheus, names)
    while missing and time.monotonic() < deadline:
        time.sleep(1)
        missing = missing_metrics(prometheus, names)

    invalid = {}
    for expression in promql.all_expressions():
        text = promql.expand(expression.text, VARIABLES)
        answer = prometheus.query(text)
        if answer["status"] != "success":
            invalid[expression.where] = f"{text}: {answer.get('error')}"

    uses = referenced()
    report = "\n".join(
        f"  {name} (read by {len(uses[name])}: {'; '.join(sorted(set(uses[name]))[:3])})"
        for name in missing
    )
    problems = []
    if invalid:
        problems.append("expressions Prometheus refused:\n" + "\n".join(invalid.values()))
    if missing:
        problems.append(f"{len(missing)} metrics have no series in Prometheus:\n{report}")
        # What the runs and the agent that executed them say, so a failure explains itself.
        runs = kubectl.get("br", "-n", activity)["items"]
        problems.append(
            "BackupRuns: "
            + json.dumps({run["metadata"]["name"]: run.get("status") for run in runs}, indent=1)
        )
        problems.append("its agent's log (tail):\n" + own_agent.log.read_text()[-4000:])
    assert not problems, "\n".join(problems)
    print(f"{len(promql.all_expressions())} expressions ran; {len(names)} metrics have series")


def test_the_node_variable_lists_the_scraped_agents(prometheus: Prometheus, node: str) -> None:
    query = promql.expand("group by (node) (nodekeeper_agent_info)", VARIABLES)
    nodes = {series["metric"]["node"] for series in prometheus.series(query)}
    assert {node, OWN_NODE} <= nodes
