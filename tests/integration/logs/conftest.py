"""The offline agent as a real process, real containers, and readers of what the agent stored.

Every container a test starts is named ``nkrel-<run>-...`` and removed (``docker rm -f``) at
teardown; the agent follows only containers with that prefix (``--log-include``), so other
engineers' containers on the same engine neither slow it down nor appear in the results.
"""

import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from nodekeeper.logs.query import MAX_LIMIT, container_lines
from nodekeeper.logs.records import Checkpoint, StoredLine
from nodekeeper.logs.store import decode_checkpoint
from tests.integration.conftest import TEST_IMAGE
from tests.support.agent import AgentProcess
from tests.support.waiting import eventually_sync

DOCKER_CONTAINERS = Path("/var/lib/docker/containers")
LOG_STORE = "logs.db"
RUN_PREFIX = f"nkrel-{uuid.uuid4().hex[:8]}"


class LogAgent(AgentProcess):
    """`nodekeeper run --offline` (only this run's containers), and readers of what it stored."""

    @property
    def store(self) -> Path:
        return self.state_dir / LOG_STORE

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc/PID/status")

    def lines(self, container: str) -> list[StoredLine]:
        return stored_lines(self.store, container)

    def checkpoint(self, container_id: str) -> Checkpoint | None:
        return stored_checkpoint(self.store, container_id)

    def wait_drained(self, container: str, seconds: float = 120) -> list[StoredLine]:
        """Poll until the stored count is stable across two looks and the agent lags 0 bytes."""
        previous = -1
        found: list[StoredLine] = []

        def settled() -> bool:
            nonlocal previous, found
            found = self.lines(container)
            stable = len(found) == previous and self.metric("nodekeeper_log_lag_bytes") == 0
            previous = len(found)
            return stable

        eventually_sync(settled, what=f"the agent to drain {container}", seconds=seconds, every=0.5)
        return found


def stored_lines(store: Path, container: str) -> list[StoredLine]:
    """Every stored line of one container (id prefix or name), paging with cursors."""
    if not store.exists():
        return []
    return container_lines(store, container)


def cli_lines(state_dir: Path, container: str) -> list[dict[str, object]]:
    """Every stored line as `nodekeeper logs -o json` prints it, paging with --cursor."""
    found: list[dict[str, object]] = []
    cursor: list[str] = []
    while True:
        result = subprocess.run(
            [
                sys.executable,
                *("-m", "nodekeeper.cli", "logs", "--state-dir", str(state_dir)),
                *("-c", container, "-o", "json", "--limit", str(MAX_LIMIT), *cursor),
            ],
            capture_output=True,
            check=True,
            timeout=60,
        )
        found.extend(orjson.loads(line) for line in result.stdout.splitlines())
        more = result.stderr.decode().strip()
        if not more:
            return found
        assert more.startswith("(more lines: --cursor "), more
        cursor = ["--cursor", more.removeprefix("(more lines: --cursor ").rstrip(")")]


def stored_checkpoint(store: Path, container_id: str) -> Checkpoint | None:
    """The committed checkpoint of a container, read as any reader would (read-only)."""
    if not store.exists():
        return None
    db = sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT data FROM checkpoints WHERE container_id = ?", (container_id,)
        ).fetchone()
    except sqlite3.OperationalError:  # the schema is not created yet
        return None
    finally:
        db.close()
    return None if row is None else decode_checkpoint(container_id, bytes(row[0]))


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[Callable[..., LogAgent]]:
    """Make (and start) agents; each is stopped at teardown, its log printed on failure."""
    started: list[LogAgent] = []

    def make(*extra: str, state_dir: Path | None = None) -> LogAgent:
        agent = LogAgent.offline(
            state_dir or tmp_path / f"state-{len(started)}",
            *("--log-poll-seconds", "0.2"),
            *("--log-include", f'["name={RUN_PREFIX}-*"]'),
            *extra,
        )
        started.append(agent)
        agent.start()
        return agent

    yield make
    for agent in started:
        code = agent.stop()
        print(f"agent log: {agent.log} (exit {code})")


@pytest.fixture
def agent(agent_factory: Callable[..., LogAgent]) -> LogAgent:
    return agent_factory()


class DockerCli:
    """Containers made with the docker CLI (log options included), removed at teardown."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def name(self, label: str) -> str:
        return f"{RUN_PREFIX}-{label}-{uuid.uuid4().hex[:6]}"

    def run(self, label: str, script: str, *options: str) -> tuple[str, str]:
        """Start `sh -c script` detached; its (name, id)."""
        name = self.name(label)
        self.names.append(name)
        result = subprocess.run(
            ["docker", "run", "-d", "--name", name, *options, TEST_IMAGE, "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"docker run failed: {result.stderr}"
        return name, result.stdout.strip()

    def wait(self, name: str, seconds: float = 120) -> int:
        result = subprocess.run(
            ["docker", "wait", name], capture_output=True, text=True, timeout=seconds, check=True
        )
        return int(result.stdout.strip())

    def remove(self, name: str) -> None:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)

    def log_files(self, container_id: str) -> list[Path]:
        return sorted((DOCKER_CONTAINERS / container_id).glob("*-json.log*"))

    def live_log(self, container_id: str) -> Path:
        return DOCKER_CONTAINERS / container_id / f"{container_id}-json.log"


@pytest.fixture
def docker() -> Iterator[DockerCli]:
    cli = DockerCli()
    yield cli
    for name in cli.names:
        cli.remove(name)


def writer_script(*, tag: str, per_stream: int, batches: int, pause_us: int, pad: int = 0) -> str:
    """A busybox awk that writes numbered lines to stdout and stderr in paced batches.

    Each batch is `per_stream` lines on each stream, then a flush and a `usleep`, so the rate is
    about 2 * per_stream lines per (pause + write time). Lines read ``<tag> out|err <n> <pad>``.
    """
    padding = "p" * pad
    program = (
        f"BEGIN{{n=0; for(b=0;b<{batches};b++){{for(i=0;i<{per_stream};i++){{n++;"
        f' printf "{tag} out %d {padding}\\n", n;'
        f' printf "{tag} err %d {padding}\\n", n > "/dev/stderr"}}'
        f' fflush(); fflush("/dev/stderr"); system("usleep {pause_us}")}}}}'
    )
    return f"awk '{program}'"


def numbers(lines: list[StoredLine], tag: str, stream: str) -> list[int]:
    """The sequence numbers of one writer's stream, in stored order."""
    label = "out" if stream == "stdout" else "err"
    found: list[int] = []
    for line in lines:
        if line.stream != stream:
            continue
        parts = line.log.split()
        assert parts[:2] == [tag, label], f"a foreign line on {stream}: {line.log!r}"
        found.append(int(parts[2]))
    return found


FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "docker" / "containers"


def fake_container(root: Path, container_id: str, name: str, max_file: int = 1) -> Path:
    """A container directory as dockerd leaves it (from a checked-in fixture); its log's path.

    The log file itself is the test's to write: the test plays dockerd.
    """
    template = FIXTURE / ("4b" * 32)
    directory = root / container_id
    directory.mkdir(parents=True)
    log = directory / f"{container_id}-json.log"
    config = orjson.loads((template / "config.v2.json").read_bytes())
    config.update(ID=container_id, Name=f"/{name}", LogPath=str(log))
    (directory / "config.v2.json").write_bytes(orjson.dumps(config))
    host = orjson.loads((template / "hostconfig.json").read_bytes())
    host["LogConfig"] = {"Type": "json-file", "Config": {"max-file": str(max_file)}}
    (directory / "hostconfig.json").write_bytes(orjson.dumps(host))
    return log


def new_container_id() -> str:
    return os.urandom(32).hex()
