"""The offline agent as the log benchmarks see it: a process, its /metrics, its /proc entries.

Shared by bench/logs_throughput.py, logs_latency.py, logs_overhead.py and logs_leaks.py. The
agent runs exactly as a user runs it (``nodekeeper run --offline``) in its own process, so what
is measured includes start-up, the HTTP server and pressure sampling, and nothing of the
benchmark itself. Docker containers used by the benchmarks are named with a per-run prefix and
removed in ``finally``; dockerd itself is never touched.
"""

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

# The repository, for tests.support: a benchmark runs as `python bench/x.py`, with bench/ alone
# on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.agent import AgentProcess

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests/fixtures/docker/containers" / ("1f" * 32)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
TEST_IMAGE = "nodekeeper-test/busybox:latest"
DOCKER_CONTAINERS = Path("/var/lib/docker/containers")


class OfflineAgent(AgentProcess):
    """``nodekeeper run --offline`` on ``root`` (warnings only in its log), spawned at once: a
    benchmark measures from the process's start (``started_at``), ready or not."""

    def __init__(self, root: Path, state_dir: Path, *extra: str) -> None:
        more = ("--log-containers-dir", str(root), "--log-level", "warning", *extra)
        super().__init__(("--offline",), state_dir, more)
        self.spawn()

    def lines(self) -> float:
        return self.metrics().get("nodekeeper_log_lines_total", 0.0)


# --- /proc, read from outside the agent


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def inotify_watches(pid: int) -> int:
    """Watches held by every inotify fd of the process (``inotify wd:`` lines in fdinfo)."""
    total = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:inotify":
                continue
            text = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
            total += text.count("inotify wd:")
    return total


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def histogram_quantile(samples: dict[str, float], name: str, q: float) -> float:
    """Prometheus' histogram_quantile over the cumulative ``name_bucket{le=...}`` samples
    (linear within a bucket); ``before`` may be subtracted by the caller for a window."""
    buckets = sorted(
        (float(key.split("le=")[1].rstrip("}")), value)
        for key, value in samples.items()
        if key.startswith(f"{name}_bucket{{")
    )
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            width = count - lower_count
            fraction = (rank - lower_count) / width if width else 1.0
            return lower_bound + (bound - lower_bound) * fraction
        lower_bound, lower_count = bound, count
    return lower_bound


def window(after: dict[str, float], before: dict[str, float], prefix: str) -> dict[str, float]:
    """The samples starting with ``prefix``, as increases from ``before`` to ``after``."""
    return {k: v - before.get(k, 0.0) for k, v in after.items() if k.startswith(prefix)}


# --- Docker containers of one benchmark run


def docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def run_prefix(name: str) -> str:
    return f"nkbench-{name}-{os.getpid()}-"


def start_writers(
    prefix: str, count: int, rate: int, seconds: float, start_at: int | None = None
) -> list[str]:
    """``count`` containers printing ``rate`` numbered lines a second for ``seconds``; their ids.

    busybox sh prints with its printf builtin, ``rate / 10`` lines every 0.1 s (``usleep`` is a
    fork, so pacing each line would cost the machine more than the agent under test does). With
    ``start_at`` (epoch seconds) they all wait for that second, so the load starts at once
    although ``docker run`` takes a fraction of a second per container.
    """
    per_tick = max(1, rate // 10)
    ticks = int(seconds * 10)
    line = f'printf "%s %06d %s\\n" "$HOSTNAME" $i "{"x" * 80}"; i=$((i+1)); '
    wait = f"while [ $(date +%s) -lt {start_at} ]; do usleep 20000; done; " if start_at else ""
    script = (
        f"{wait}i=0; t=0; while [ $t -lt {ticks} ]; do {line * per_tick}"
        "t=$((t+1)); usleep 100000; done"
    )
    ids: list[str] = []
    for n in range(count):
        ids.append(
            docker("run", "-d", "--name", f"{prefix}{n:03d}", TEST_IMAGE, "sh", "-c", script)
        )
    return ids


def lines_written(rate: int, seconds: float) -> int:
    """Lines one :func:`start_writers` container prints."""
    return int(seconds * 10) * max(1, rate // 10)


def wait_exited(prefix: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while docker("ps", "-q", "--filter", f"name=^/{prefix}") and time.monotonic() < deadline:
        time.sleep(1)


def docker_lines(ids: Sequence[str], root: Path = DOCKER_CONTAINERS) -> int:
    """Lines dockerd wrote to the containers' json-files: what the agent must store."""
    total = 0
    for container_id in ids:
        path = root / container_id / f"{container_id}-json.log"
        with contextlib.suppress(FileNotFoundError), path.open("rb") as f:
            while data := f.read(1 << 20):
                total += data.count(b"\n")
    return total


# --- Docker's files without Docker


def docker_time(ns: int) -> str:
    seconds, fraction = divmod(ns, 1_000_000_000)
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{whole}.{fraction:09d}Z"


def fake_container(root: Path, container_id: str) -> Path:
    """``root/<id>/`` as dockerd leaves it (configs from the test fixture); its log's path."""
    directory = root / container_id
    directory.mkdir(parents=True)
    log = directory / f"{container_id}-json.log"
    config = json.loads((FIXTURE / "config.v2.json").read_text())
    config["ID"] = container_id
    config["Name"] = f"/bench-{container_id[:8]}"
    config["LogPath"] = str(log)
    config["Config"]["Labels"] = {}
    (directory / "config.v2.json").write_text(json.dumps(config))
    shutil.copy(FIXTURE / "hostconfig.json", directory / "hostconfig.json")
    return log


class FileWriters:
    """What dockerd does for ``count`` containers printing ``rate`` lines/s, without Docker:
    each line appended with its own write(2), stamped with the time of writing, the containers'
    ``rate / 10``-line bursts spread over each 0.1 s tick. For when the engine is unusable, or to
    measure the agent alone."""

    def __init__(self, root: Path, count: int, rate: int, seconds: float) -> None:
        rng = random.Random(7)
        self.logs = [fake_container(root, f"{rng.getrandbits(256):064x}") for _ in range(count)]
        self.per_tick = max(1, rate // 10)
        self.ticks = int(seconds * 10)
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="writers", daemon=True)

    def start(self, start_at: float) -> None:
        self._start_at = start_at
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def _run(self) -> None:
        time.sleep(max(0.0, self._start_at - time.time()))
        fds = [os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640) for log in self.logs]
        text = "x" * 80
        try:
            start = time.monotonic()
            spacing = 0.1 / len(fds)
            for tick in range(self.ticks):
                for n, fd in enumerate(fds):
                    at = start + tick * 0.1 + n * spacing
                    delay = at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    for _ in range(self.per_tick):
                        stamp = docker_time(time.time_ns())
                        line = f'{{"log":"c{n} {self.written:07d} {text}\\n","stream":"stdout",'
                        os.write(fd, f'{line}"time":"{stamp}"}}\n'.encode())
                        self.written += 1
        finally:
            for fd in fds:
                os.close(fd)


class DockerLoad:
    """Real containers (``start_writers``) on Docker's root, only this run's followed."""

    def __init__(self, name: str, count: int, rate: int, seconds: float, root: Path) -> None:
        self.prefix = run_prefix(name)
        self.root = root
        self.count, self.rate, self.seconds = count, rate, seconds
        self.agent_args = ["--log-include", f'["name={self.prefix}*"]']
        self.agent_args += ["--log-read-from-head", "false"]
        self.ids: list[str] = []
        self.start_at = 0

    def start(self) -> None:
        # Containers start one by one (~0.3 s each); they all begin writing at one second.
        self.start_at = int(time.time()) + 5 + int(self.count * 0.5)
        self.ids = start_writers(self.prefix, self.count, self.rate, self.seconds, self.start_at)

    def finish(self) -> int:
        """Wait for every writer to exit (busybox's pacing runs late under load); the lines
        Docker wrote (its files are the truth)."""
        wait_exited(self.prefix, self.seconds + 300)
        return docker_lines(self.ids, self.root)

    def cleanup(self) -> None:
        remove_prefixed(self.prefix)


class FileLoad:
    """:class:`FileWriters` on a root of fake containers: the agent's cost without dockerd's."""

    def __init__(self, work: Path, count: int, rate: int, seconds: float) -> None:
        self.root = work / "containers"
        self.count, self.rate, self.seconds = count, rate, seconds
        self.writers = FileWriters(self.root, count, rate, seconds)
        self.agent_args: list[str] = []
        self.start_at = 0

    def start(self) -> None:
        self.start_at = int(time.time()) + 2
        self.writers.start(self.start_at)

    def finish(self) -> int:
        self.writers.join()
        return self.writers.written

    def cleanup(self) -> None:
        pass


def remove_prefixed(prefix: str) -> None:
    """Remove every container whose name starts with ``prefix`` (ours only)."""
    names = docker("ps", "-aq", "--filter", f"name=^/{prefix}", check=False).split()
    for chunk in _chunks(names, 50):
        docker("rm", "-f", *chunk, check=False)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_arguments(
    parser: argparse.ArgumentParser,
    files: str = "this script appending to fake containers' files",
) -> None:
    """--root and --writers, which every benchmark with a container load takes."""
    parser.add_argument("--root", type=Path, default=DOCKER_CONTAINERS)
    parser.add_argument(
        "--writers",
        choices=("docker", "files"),
        default="docker",
        help=f"real containers, or {files}",
    )


def make_load(args: argparse.Namespace, purpose: str, tmp: Path) -> "DockerLoad | FileLoad":
    """The load the options of load_arguments (and --containers/--rate/--seconds) ask for."""
    if args.writers == "docker":
        return DockerLoad(purpose, args.containers, args.rate, args.seconds, args.root)
    return FileLoad(tmp, args.containers, args.rate, args.seconds)


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def unstored(written: float, stored: float) -> int:
    """The exit status of a benchmark that waited for ``written`` lines until its deadline: 0
    when all were stored, else 1, saying how many never were (a figure over lost lines would
    read as a result)."""
    missing = round(written - stored)
    if missing <= 0:
        return 0
    print(
        f"  NOT DONE: {missing:,} of {round(written):,} lines written were never stored by the "
        "deadline; the figures above leave them out"
    )
    return 1
