"""`nodekeeper run` as a process: it starts against an API server, becomes ready, and stops
cleanly on SIGTERM; it refuses a server older than Kubernetes 1.32 with one line.
"""

import asyncio
import contextlib
import json
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import kmock
import pytest

from tests.component.conftest import NODE


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_version(emulator: kmock.KubernetesEmulator, git_version: str) -> None:
    minor = git_version.split(".")[1]
    payload = {"major": "1", "minor": minor, "gitVersion": git_version}
    # The kubernetes client asks for /version/, kopf and kubectl for /version.
    emulator["get /version"] << payload
    emulator["get /version/"] << payload


async def start_agent(config: Path, port: int, *more: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nodekeeper.cli",
        "run",
        "--node-name",
        NODE,
        "--kubeconfig",
        str(config),
        "--http-host",
        "127.0.0.1",
        "--http-port",
        str(port),
        *more,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@contextlib.asynccontextmanager
async def agent_process(
    config: Path, port: int, *more: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """The agent as a process, killed on the way out if a test left it running."""
    process = await start_agent(config, port, *more)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def until_logged(process: asyncio.subprocess.Process, message: str) -> None:
    """Read the agent's stderr up to the log line ``message``."""
    assert process.stderr is not None
    async with asyncio.timeout(30):  # a hang guard
        async for line in process.stderr:
            if json.loads(line)["message"] == message:
                return
    raise AssertionError(f"the agent's stderr ended before {message!r}")


async def wait_ready(port: int, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(30):
        while True:
            assert process.returncode is None, "the agent exited before it was ready"
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


async def test_sigterm_stops_the_agent_cleanly(
    emulator: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    serve_version(emulator, "v1.35.1")
    port = free_port()
    config = kubeconfig(tmp_path / "kc", str(emulator.url).rstrip("/"))
    async with agent_process(config, port) as process:
        await wait_ready(port, process)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            assert f'node="{NODE}"' in await response.text()

        process.send_signal(signal.SIGTERM)
        began = time.monotonic()
        # The agent promises a stop within its 5 s shutdown timeout; 15 s is the hang guard.
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=15)
        print(f"stopped {time.monotonic() - began:.2f} s after SIGTERM")

    assert process.returncode == 0
    lines = [json.loads(line) for line in stderr.decode().splitlines()]
    assert lines[-1]["message"] == "agent stopped"
    assert not [line for line in lines if line["level"] in ("error", "critical")]


async def test_sigusr1_writes_a_crash_report_of_the_last_minutes_and_the_agent_goes_on(
    emulator: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    serve_version(emulator, "v1.35.1")
    port = free_port()
    state = tmp_path / "state"
    config = kubeconfig(tmp_path / "kc", str(emulator.url).rstrip("/"))
    more = ("--state-dir", str(state), "--log-containers-dir", str(tmp_path))
    async with agent_process(config, port, *more) as process:
        await wait_ready(port, process)
        process.send_signal(signal.SIGUSR1)
        await until_logged(process, "crash report written")
        reports = sorted(state.glob("crash-*.json"))
        await wait_ready(port, process)  # still serving
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), timeout=15)

    assert process.returncode == 0
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
    process = await start_agent(
        kubeconfig(tmp_path / "kc", str(emulator.url).rstrip("/")), free_port()
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 1
    assert stderr.decode() == (
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

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
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
    more = ("--state-dir", str(tmp_path), "--log-level", "debug")
    with SlowVersionServer(delay=delay) as server:
        config = kubeconfig(tmp_path / "kc", server.url)
        async with agent_process(config, free_port(), *more) as process:
            await until_logged(process, "connecting to the API server")
            process.send_signal(signal.SIGTERM)  # while /version is still on its way
            # Within the agent's 5 s shutdown timeout, even with the call still waiting (30 s):
            # 15 s is the hang guard.
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=15)

    assert process.returncode == 0
    lines = [json.loads(line) for line in stderr.decode().splitlines()]
    assert lines[0]["message"] == "stopping during start-up"
    assert lines[-1]["message"] == "agent stopped"
    assert not [line for line in lines if line["level"] in ("error", "critical")]


async def test_an_api_server_that_never_answers_is_one_line_after_the_api_timeout(
    tmp_path: Path,
) -> None:
    more = ("--state-dir", str(tmp_path), "--api-timeout-seconds", "3")
    with SlowVersionServer(delay=None) as server:
        config = kubeconfig(tmp_path / "kc", server.url)
        async with agent_process(config, free_port(), *more) as process:
            began = time.monotonic()
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 1
    # The limit the user set, enforced: at most one retry of the 3 s call, 6 s (urllib3's
    # default of three retries made it 12 s); the rest of the bound is the process's start-up.
    assert time.monotonic() - began < 10
    last = stderr.decode().splitlines()[-1]
    assert last.startswith("nodekeeper: ")
    assert "timed out" in last
