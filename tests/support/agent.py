"""`nodekeeper run` as a process: the one way the component, integration and e2e tests and the
benchmarks start the agent.

An AgentProcess is a command line, a loopback port and a state directory that outlive the
processes run with them, for ``nodekeeper run --offline`` (:meth:`AgentProcess.offline`) or for
one node against a kubeconfig (:meth:`AgentProcess.for_node`):

- ``start()``: a process, then ready on ``/readyz``; ``spawn()`` does not wait;
- ``stop()``: SIGTERM, as kubelet stops it; the exit code;
- ``kill()``: SIGKILL, no shutdown code runs, as when the OOM killer or a node crash hits;
- ``restart()``: a clean stop (exit code 0) and a start, on the same port and state directory.

Every start appends the process's stdout and stderr to one log, ``<state_dir>/agent.log``,
after a ``--- start N`` line, so a failure shows the whole history; ``output()`` is the current
start's part. The blocking waits are for sync callers. An async test, whose event loop serves
the emulated API server the agent talks to, must not block: it awaits ``eventually()`` on the
probes ``ready()``, ``exited()`` and ``logged()`` instead.
"""

import contextlib
import json
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.net import free_port
from tests.support.processes import stop_gently
from tests.support.waiting import eventually_sync

LOG_NAME = "agent.log"


class AgentProcess:
    def __init__(self, mode: Sequence[str], state_dir: Path, extra: Sequence[str] = ()) -> None:
        """``mode``: the arguments saying what the agent runs for (offline, or a node)."""
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.log = state_dir / LOG_NAME
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            *(sys.executable, "-m", "nodekeeper.cli", "run", *mode),
            # Each agent its own log store and port: several run on one machine.
            *("--state-dir", str(state_dir)),
            *("--http-host", "127.0.0.1", "--http-port", str(self.port)),
            *extra,
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.started_at = 0.0  # time.monotonic() of the last spawn
        self._output_from = 0  # where the last start's output begins in the log

    @classmethod
    def offline(cls, state_dir: Path, *extra: str) -> Self:
        return cls(("--offline",), state_dir, extra)

    @classmethod
    def for_node(cls, node: str, kubeconfig: str | Path, state_dir: Path, *extra: str) -> Self:
        return cls(("--node-name", node, "--kubeconfig", str(kubeconfig)), state_dir, extra)

    # --- the process

    def spawn(self) -> None:
        """A new process; not waited for."""
        assert not self.alive(), "already running"
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"--- start {self.starts}: {shlex.join(self.command)}\n".encode())
            log.flush()
            self._output_from = log.tell()
            self.started_at = time.monotonic()
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)

    def start(self, seconds: float = 60) -> None:
        self.spawn()
        self.wait_ready(seconds)

    def wait_ready(self, seconds: float = 60) -> None:
        try:
            eventually_sync(self.ready, what="the agent ready", seconds=seconds, every=0.05)
        except AssertionError as e:
            raise AssertionError(f"{e}; its log:\n{self.log_tail()}") from None

    def stop(self, grace: float = 15) -> int | None:
        """SIGTERM, SIGKILL after ``grace`` seconds; the exit code (None: never started)."""
        return None if self.process is None else stop_gently(self.process, grace)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def restart(self) -> None:
        code = self.stop()
        assert code == 0, f"the agent exited with {code} on SIGTERM: {self.log_tail()}"
        self.start()

    def send_signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- probes: they never wait

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def check_alive(self) -> None:
        assert self.process is not None, "the agent was never started"
        if self.process.poll() is not None:
            raise AssertionError(
                f"the agent exited with {self.process.returncode}: {self.log_tail()}"
            )

    def ready(self) -> bool:
        """``/readyz`` says 200; fails with the log when the process has exited."""
        self.check_alive()
        with contextlib.suppress(requests.RequestException):
            return requests.get(f"{self.url}/readyz", timeout=2).ok
        return False

    def output(self) -> str:
        """What the current start wrote to stdout and stderr so far."""
        with self.log.open("rb") as log:
            log.seek(self._output_from)
            return log.read().decode(errors="replace")

    def logged(self, message: str) -> bool:
        """The current start logged a JSON line with this message."""
        for line in self.output().splitlines():
            with contextlib.suppress(ValueError):
                if json.loads(line).get("message") == message:
                    return True
        return False

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    # --- /metrics, as Prometheus reads it

    def metrics(self) -> dict[str, float]:
        """Every sample by name, labels joined in (``x_bucket{le=0.25}``; plain ``x`` without)."""
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(self._scrape()):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """The first sample ``name`` that has ``labels`` (among others); None when none has."""
        for family in text_string_to_metric_families(self._scrape()):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in (labels or {}).items()
                ):
                    return float(sample.value)
        return None

    def _scrape(self) -> str:
        response = requests.get(f"{self.url}/metrics", timeout=5)
        response.raise_for_status()
        return response.text
