"""`nodekeeper run` as a process: it starts against an API server, becomes ready, and stops
cleanly on SIGTERM; it refuses a server older than Kubernetes 1.32 with one line; a part that
dies stops it with a crash report and exit code 1; a stop that hangs ends with EXIT_HUNG.
"""

import asyncio
import contextlib
import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import kmock
import pytest

from nodekeeper.api.codes import EXIT_CLUSTER, EXIT_HUNG
from nodekeeper.api.times import rfc3339_ns
from tests.component.conftest import NODE
from tests.integration.logs.conftest import fake_container, new_container_id
from tests.support.agent import AgentProcess
from tests.support.waiting import eventually


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def serve_version(emulator: kmock.KubernetesEmulator, git_version: str) -> None:
    minor = git_version.split(".")[1]
    payload = {"major": "1", "minor": minor, "gitVersion": git_version}
    # The kubernetes client asks for /version/, kopf and kubectl for /version.
    emulator["get /version"] << payload
    emulator["get /version/"] << payload


@contextlib.contextmanager
def spawned(agent: AgentProcess) -> Iterator[AgentProcess]:
    """The agent as a process, killed on the way out if a test left it running."""
    agent.spawn()
    try:
        yield agent
    finally:
        if agent.alive():
            agent.kill()


# Not agent.wait_ready() nor agent.stop(): they block, and this loop serves the emulated API
# server the agent talks to.
async def until_ready(agent: AgentProcess) -> None:
    await eventually(agent.ready, what="the agent ready", seconds=30)


async def until_exited(agent: AgentProcess, seconds: float) -> int | None:
    await eventually(agent.exited, what="the agent's exit", seconds=seconds)
    return agent.returncode


def json_file_record(text: str) -> bytes:
    record = {"log": text, "stream": "stdout", "time": rfc3339_ns(time.time_ns())}
    return json.dumps(record).encode() + b"\n"


def logged_lines(agent: AgentProcess) -> list[dict[str, str]]:
    return [json.loads(line) for line in agent.output().splitlines()]


async def test_sigterm_stops_the_agent_cleanly(
    emulator: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    serve_version(emulator, "v1.35.1")
    config = kubeconfig(tmp_path / "kc", str(emulator.url).rstrip("/"))
    with spawned(AgentProcess.for_node(NODE, config, tmp_path / "state")) as agent:
        await until_ready(agent)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{agent.url}/metrics") as response,
        ):
            assert f'node="{NODE}"' in await response.text()

        agent.send_signal(signal.SIGTERM)
        began = time.monotonic()
        # The agent promises a stop within its 5 s shutdown timeout; 15 s is the hang guard.
        code = await until_exited(agent, 15)
        print(f"stopped {time.monotonic() - began:.2f} s after SIGTERM")

    assert code == 0
    lines = logged_lines(agent)
    assert lines[-1]["message"] == "agent stopped"
    assert not [line for line in lines if line["level"] in ("error", "critical")]


async def test_sigusr1_writes_a_crash_report_of_the_last_minutes_and_the_agent_goes_on(
    emulator: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    serve_version(emulator, "v1.35.1")
    config = kubeconfig(tmp_path / "kc", str(emulator.url).rstrip("/"))
    more = ("--log-containers-dir", str(tmp_path))
    with spawned(AgentProcess.for_node(NODE, config, tmp_path / "state", *more)) as agent:
        await until_ready(agent)
        agent.send_signal(signal.SIGUSR1)
        await eventually(
            lambda: agent.logged("crash report written"), what="a crash report", seconds=30
        )
        reports = sorted(agent.state_dir.glob("crash-*.json"))
        await until_ready(agent)  # still serving
        agent.send_signal(signal.SIGTERM)
        code = await until_exited(agent, 15)

    assert code == 0
    report = json.loads(reports[0].read_text())
    assert report["reason"] == "SIGUSR1"
    snapshot = report["snapshots"][-1]
    assert snapshot["memory_bytes"] > 0
    assert snapshot["tasks"] > 0
    assert snapshot["queue_depths"] == {"log_queue_bytes": 0}
    assert snapshot["lag_bytes"] == 0
    assert set(snapshot["pressure"]) == {
        "NodekeeperCPUPressure",
        "NodekeeperMemoryPressure",
        "NodekeeperIOPressure",
    }


@pytest.mark.parametrize("old", ["v1.31.4", "v1.26.4+k3s1"])
async def test_an_old_server_is_refused_with_one_line(
    emulator: kmock.KubernetesEmulator, tmp_path: Path, old: str
) -> None:
    serve_version(emulator, old)
    config = kubeconfig(tmp_path / "kc", str(emulator.url).rstrip("/"))
    with spawned(AgentProcess.for_node(NODE, config, tmp_path / "state")) as agent:
        code = await until_exited(agent, 60)
    assert code == 1
    assert agent.output() == (
        f"nodekeeper: Kubernetes {old} is too old: nodekeeper needs 1.32 or newer "
        "(CRD selectableFields); upgrade the control plane\n"
    )


class SlowVersionServer:
    """An API server that answers /version after ``delay`` seconds, or never (``None``)."""

    def __init__(self, delay: float | None) -> None:
        import http.server
        import threading

        outer = self
        self.release = threading.Event()
        self.requests = 0  # calls received (each retry is one more)
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    outer.requests += 1
                outer.release.wait(delay)
                body = json.dumps({"major": "1", "minor": "35", "gitVersion": "v1.35.1"})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> "SlowVersionServer":
        return self

    def __exit__(self, *_: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("delay", [2.0, None], ids=["slow", "silent"])
async def test_sigterm_during_start_up_stops_the_agent_cleanly(
    tmp_path: Path, delay: float | None
) -> None:
    with SlowVersionServer(delay=delay) as server:
        config = kubeconfig(tmp_path / "kc", server.url)
        agent = AgentProcess.for_node(NODE, config, tmp_path / "state", "--log-level", "debug")
        with spawned(agent):
            connecting = "connecting to the API server"
            await eventually(lambda: agent.logged(connecting), what=connecting, seconds=30)
            agent.send_signal(signal.SIGTERM)  # while /version is still on its way
            # Within the agent's 5 s shutdown timeout, even with the call still waiting (30 s):
            # 15 s is the hang guard.
            code = await until_exited(agent, 15)

    assert code == 0
    lines = logged_lines(agent)
    # What it logged after it began to connect:
    lines = lines[[line["message"] for line in lines].index(connecting) + 1 :]
    assert lines[0]["message"] == "stopping during start-up"
    assert lines[-1]["message"] == "agent stopped"
    assert not [line for line in lines if line["level"] in ("error", "critical")]


async def test_an_api_server_that_never_answers_is_one_line_after_the_api_timeout(
    tmp_path: Path,
) -> None:
    with SlowVersionServer(delay=None) as server:
        config = kubeconfig(tmp_path / "kc", server.url)
        more = ("--api-timeout-seconds", "3")
        with spawned(AgentProcess.for_node(NODE, config, tmp_path / "state", *more)) as agent:
            # A hang guard: the call and its one retry take 6 s of the 60.
            code = await until_exited(agent, 60)
        requests = server.requests

    assert code == 1
    # The limit the user set, enforced: the 3 s call and at most one retry of it (urllib3's
    # default of three retries made four calls, 12 s), counted where they arrive, not timed.
    assert 1 <= requests <= 2
    last = agent.output().splitlines()[-1]
    assert last.startswith("nodekeeper: ")
    assert "timed out" in last


async def a_part_dies_of_a_locked_store(
    emulator: kmock.KubernetesEmulator, tmp_path: Path, *, unlock_before_the_stop: bool
) -> AgentProcess:
    """An agent whose log pipeline dies: another writer holds the log store's write lock (a
    second agent on the same state directory, a user's `sqlite3 logs.db` left in a
    transaction), so the pipeline's next write gives up after SQLite's busy timeout. The
    agent, once it has exited."""
    serve_version(emulator, "v1.35.1")
    config = kubeconfig(tmp_path / "kc", str(emulator.url).rstrip("/"))
    containers = tmp_path / "containers"
    container_id = new_container_id()
    log = fake_container(containers, container_id, "crash-victim")
    more = ("--log-containers-dir", str(containers), "--log-poll-seconds", "0.2")
    with spawned(AgentProcess.for_node(NODE, config, tmp_path / "state", *more)) as agent:
        await until_ready(agent)
        store = agent.state_dir / "logs.db"
        await eventually(store.exists, what="the log store", seconds=30)
        holder = sqlite3.connect(store, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            with log.open("ab") as file:
                file.write(json_file_record("a line the store cannot take\n"))
            died = "agent task ended unexpectedly; stopping the agent"
            await eventually(lambda: agent.logged(died), what="the pipeline's death", seconds=30)
            if unlock_before_the_stop:
                holder.close()
            await until_exited(agent, 30)
        finally:
            holder.close()
    return agent


async def test_a_part_that_dies_stops_the_agent_with_a_crash_report_and_exit_code_1(
    emulator: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    agent = await a_part_dies_of_a_locked_store(emulator, tmp_path, unlock_before_the_stop=True)

    assert agent.returncode == EXIT_CLUSTER
    died = [line for line in logged_lines(agent) if line["level"] == "error"]
    assert died[0]["message"] == "agent task ended unexpectedly; stopping the agent"
    assert died[0]["task"] == "log pipeline"
    reports = sorted(agent.state_dir.glob("crash-*.json"))
    assert len(reports) == 1
    reason = json.loads(reports[0].read_text())["reason"]
    assert reason.startswith("agent task 'log pipeline' failed: ")
    assert "stayed locked" in reason
    assert logged_lines(agent)[-1]["message"] == "agent stopped"


async def test_a_stop_that_hangs_exits_with_exit_hung_after_the_shutdown_timeout(
    emulator: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    serve_version(emulator, "v1.35.1")
    # The API server accepts the node pressure reporter's first call (reading its Node's
    # conditions, in a worker thread) and never answers: with a 60 s API timeout that thread
    # holds the process's exit long past the 2 s shutdown timeout.
    asked = asyncio.Event()

    async def never_answer() -> None:
        asked.set()
        await asyncio.Event().wait()

    emulator[f"get /api/v1/nodes/{NODE}/status"] << never_answer
    config = kubeconfig(tmp_path / "kc", str(emulator.url).rstrip("/"))
    more = (
        *("--log-containers-dir", str(tmp_path)),
        *("--api-timeout-seconds", "60", "--shutdown-timeout-seconds", "2"),
    )
    with spawned(AgentProcess.for_node(NODE, config, tmp_path / "state", *more)) as agent:
        await until_ready(agent)
        await asyncio.wait_for(asked.wait(), 30)
        agent.send_signal(signal.SIGTERM)
        # Well before the call's own 60 s timeout would have let it go: 30 s is the hang guard.
        code = await until_exited(agent, 30)

    assert code == EXIT_HUNG
    last = logged_lines(agent)[-1]
    assert last["message"] == "shutdown took longer than shutdown_timeout_seconds; exiting now"
    assert str(last["seconds"]) in ("2", "2.0")  # the setting, as logged
