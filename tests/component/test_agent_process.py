"""`nodekeeper run` as a process: it starts against an API server, becomes ready, and stops
cleanly on SIGTERM; it refuses a server older than Kubernetes 1.32 with one line.
"""

import contextlib
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import kmock
import pytest

from tests.component.conftest import NODE
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
