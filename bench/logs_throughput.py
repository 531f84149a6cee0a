"""Benchmark: json-file lines read to durable storage, nodekeeper against rsyslog side by side.

The same input for both: one Docker json-file of 1,000,000 lines (~170 bytes, request logs on
both streams, as dockerd writes them) in a fake container directory, and 10 such containers of
``--parallel-lines`` lines each read at once. Generated once into a temporary root.

- nodekeeper: ``nodekeeper run --offline`` pointed at the root with a fresh state directory;
  done when ``nodekeeper_log_lines_total`` reaches the count (polled on /metrics).
- rsyslog: its own ``rsyslogd -n`` (own config, pid file and work directory) with imfile in
  inotify mode on the same files (readMode 0), mmjsonparse (``cookie=""``: json-file lines have
  no @cee cookie) and one omfile writing ``$!time $!stream $!log``; done when the output holds
  every line (its newlines are counted). The default main queue is kept: imfile is a
  flow-controlled input (it waits when the queue is full, it never drops), and the finish line
  itself proves no line was discarded.

Durability, the same on both sides: every commit reaches the kernel (write(2)) before it counts,
none is fsynced. nodekeeper: its default ``log_store_sync=normal`` (SQLite WAL, synchronous=
NORMAL). rsyslog: omfile's defaults, ``flushOnTXEnd="on"`` (its buffer is written at the end of
each batch) and ``sync="off"`` (no fsync). Both survive a crash of the process, not of the
machine. (rsyslog's imfile position is only saved at shutdown, so unlike nodekeeper it would
re-read or skip lines after a crash; that costs it nothing here.)

The two run alternately, median of ``--runs`` each. Times are from process start to the last
line stored, and from the first line stored to the last (start-up excluded). The second rate
counts only the lines stored after the first look that found any: that first commit already
holds up to a batch of lines (50,000 for nodekeeper) stored before its clock starts.

    .venv/bin/python bench/logs_throughput.py [--lines 1000000] [--parallel 10]
        [--parallel-lines 100000] [--runs 3] [--dir /tmp]
"""

import argparse
import contextlib
import dataclasses
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests.support
from offline_agent import OfflineAgent, cpu_seconds, docker_time, fake_container, note

from tests.support.processes import stop_gently

START_NS = 1_790_000_000 * 1_000_000_000
PATHS = ["/api/v1/items", "/api/v1/orders", "/healthz", "/api/v2/users", "/metrics", "/login"]
LEVELS = ["INFO"] * 8 + ["WARN", "ERROR"]
AGENTS = ["Mozilla/5.0", "curl/8.5.0", "kube-probe/1.35", "python-httpx/0.28"]
TIMEOUT_SECONDS = 600.0


def json_file_lines(count: int, rng: random.Random) -> Iterator[bytes]:
    """json-file lines as dockerd writes them, ~150-200 bytes each."""
    ns = START_NS
    for i in range(count):
        ns += rng.randrange(20_000, 400_000)
        if rng.random() < 0.02:
            text = f"    at com.example.shop.Handler.process(Handler.java:{rng.randrange(40, 900)})"
        else:
            text = (
                f"{docker_time(ns)[:23]}Z {rng.choice(LEVELS)} req={rng.getrandbits(48):012x} "
                f"{rng.choice(PATHS)}/{rng.randrange(100000)} status={rng.choice((200, 200, 404))}"
                f' {rng.randrange(1, 900)}ms ua=\\"{rng.choice(AGENTS)}\\"'  # escaped for JSON
            )
        stream = "stderr" if i % 7 == 0 else "stdout"
        yield (f'{{"log":"{text}\\n","stream":"{stream}","time":"{docker_time(ns)}"}}\n'.encode())


def write_log(root: Path, container_id: str, lines: int, rng: random.Random) -> Path:
    """A fake container ``root/<id>/`` whose json-file holds ``lines`` lines."""
    log = fake_container(root, container_id)
    with log.open("wb") as out:
        chunk: list[bytes] = []
        for line in json_file_lines(lines, rng):
            chunk.append(line)
            if len(chunk) == 10_000:
                out.write(b"".join(chunk))
                chunk.clear()
        out.write(b"".join(chunk))
    return log


@dataclasses.dataclass(frozen=True)
class Run:
    total_seconds: float  # process start to the last line stored
    stream_seconds: float  # first line stored to the last
    cpu_seconds: float  # of the tailer process (all threads)
    first_lines: int  # already stored when the first line was seen: not part of the stream

    def rate(self, lines: int) -> float:
        return lines / self.total_seconds

    def stream_rate(self, lines: int) -> float:
        """Lines stored after the first sighting, over the time since: the first commit's lines
        were stored before that clock started and are left out."""
        streamed = lines - self.first_lines
        return streamed / self.stream_seconds if self.stream_seconds > 0 else float("nan")


def time_until(
    count: Callable[[], float], target: int, started: float, alive: Callable[[], None]
) -> tuple[float, int, float]:
    """Poll ``count`` until it reaches ``target``: (first seen, the count then, done), times on
    the monotonic clock.

    A measurement, not tests.support's eventually_sync(): it keeps the first-seen time, and polls
    less often once lines flow (each look at nodekeeper is a /metrics scrape, its CPU counted).
    """
    first = 0.0
    first_count = 0
    deadline = started + TIMEOUT_SECONDS
    while True:
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError(f"not done within {TIMEOUT_SECONDS:g} s ({count()} of {target})")
        seen = count()
        now = time.monotonic()
        if seen and not first:
            first, first_count = now, int(seen)
        if seen >= target:
            return first, first_count, now
        alive()
        time.sleep(0.02 if not first else 0.05)


def run_nodekeeper(root: Path, lines: int, work: Path) -> Run:
    state = work / "nodekeeper-state"
    shutil.rmtree(state, ignore_errors=True)
    agent = OfflineAgent(root, state)
    try:

        def count() -> float:
            with contextlib.suppress(OSError):
                return agent.lines()
            return 0.0

        first, first_lines, done = time_until(count, lines, agent.started_at, agent.check_alive)
        cpu = cpu_seconds(agent.pid)
        malformed = agent.metrics().get("nodekeeper_log_malformed_lines_total", 0.0)
        if malformed:
            raise RuntimeError(f"nodekeeper found {malformed:.0f} malformed lines in the input")
        verify_store(state / "logs.db", lines, root)
    finally:
        agent.stop()
    shutil.rmtree(state, ignore_errors=True)
    return Run(done - agent.started_at, done - first, cpu, first_lines)


def verify_store(path: Path, lines: int, root: Path) -> None:
    """The store holds every line, byte for byte as much as the input (records + newlines)."""
    size = sum(log.stat().st_size for log in root.glob("*/*-json.log"))
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        stored, raw = db.execute("SELECT sum(lines), sum(raw_bytes) FROM blocks").fetchone()
    if (stored, raw) != (lines, size):
        raise RuntimeError(f"store holds {stored} lines / {raw} B, input {lines} / {size} B")


RSYSLOG_CONFIG = """\
global(workDirectory="{work}" maxMessageSize="64k")
module(load="imfile" mode="inotify")
module(load="mmjsonparse")
template(name="stored" type="string" string="%$!time% %$!stream% %$!log:::drop-last-lf%\\n")
{inputs}
ruleset(name="logs") {{
  action(type="mmjsonparse" cookie="")
  action(type="omfile" file="{out}" template="stored" flushOnTXEnd="on" sync="off")
}}
"""


class NewlineCounter:
    """Newlines in a growing file, counted incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.count = 0

    def __call__(self) -> float:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                while data := f.read(8 << 20):
                    self.offset += len(data)
                    self.count += data.count(b"\n")
        except FileNotFoundError:
            pass
        return self.count


def run_rsyslog(logs: list[Path], lines: int, work: Path) -> Run:
    home = work / "rsyslog"
    shutil.rmtree(home, ignore_errors=True)
    (home / "work").mkdir(parents=True)
    out = home / "out.log"
    inputs = "\n".join(
        f'input(type="imfile" file="{log}" tag="c{n}:" readMode="0" ruleset="logs")'
        for n, log in enumerate(logs)
    )
    config = home / "rsyslog.conf"
    config.write_text(RSYSLOG_CONFIG.format(work=home / "work", inputs=inputs, out=out))
    pidfile = home / "rsyslogd.pid"
    started = time.monotonic()
    process = subprocess.Popen(
        ["rsyslogd", "-n", "-f", str(config), "-i", str(pidfile)],
        stdout=(home / "rsyslogd.log").open("wb"),
        stderr=subprocess.STDOUT,
    )

    def alive() -> None:
        if process.poll() is not None:
            raise RuntimeError(
                f"rsyslogd exited with {process.returncode}: "
                + (home / "rsyslogd.log").read_text()[-2000:]
            )

    try:
        first, first_lines, done = time_until(NewlineCounter(out), lines, started, alive)
        cpu = cpu_seconds(process.pid)
        with out.open("rb") as f:
            sample = f.readline()
        if not sample.startswith(b"20") or b" std" not in sample:
            raise RuntimeError(f"rsyslog did not write parsed fields: {sample[:200]!r}")
    finally:
        stop_gently(process, grace=30)
    shutil.rmtree(home, ignore_errors=True)
    return Run(done - started, done - first, cpu, first_lines)


def compare(name: str, root: Path, logs: list[Path], lines: int, runs: int, work: Path) -> None:
    results: dict[str, list[Run]] = {"nodekeeper": [], "rsyslog": []}
    for n in range(runs):
        for tailer in ("nodekeeper", "rsyslog") if n % 2 == 0 else ("rsyslog", "nodekeeper"):
            if tailer == "nodekeeper":
                run = run_nodekeeper(root, lines, work)
            else:
                run = run_rsyslog(logs, lines, work)
            note(
                f"  {name} run {n + 1} {tailer:<10} {run.rate(lines):>10,.0f} lines/s "
                f"({run.total_seconds:.2f} s; from first line {run.stream_rate(lines):,.0f}/s; "
                f"cpu {run.cpu_seconds:.1f} s)"
            )
            results[tailer].append(run)
    rate = {k: statistics.median(r.rate(lines) for r in v) for k, v in results.items()}
    stream = {k: statistics.median(r.stream_rate(lines) for r in v) for k, v in results.items()}
    cpu = {k: statistics.median(r.cpu_seconds for r in v) for k, v in results.items()}
    per_cpu = {k: lines / cpu[k] for k in results}
    print(f"{name}: {lines:,} lines, median of {runs}")
    for tailer in results:
        each = ", ".join(f"{r.rate(lines):,.0f}" for r in results[tailer])
        print(
            f"  {tailer:<10} {rate[tailer]:>10,.0f} lines/s from process start  "
            f"{stream[tailer]:>10,.0f} lines/s from first line  "
            f"cpu {cpu[tailer]:4.1f} s ({per_cpu[tailer]:,.0f} lines/cpu-s)   (runs: {each})"
        )
    print(
        f"  ratio nodekeeper/rsyslog: {rate['nodekeeper'] / rate['rsyslog']:.2f} from process "
        f"start, {stream['nodekeeper'] / stream['rsyslog']:.2f} from first line, "
        f"{per_cpu['nodekeeper'] / per_cpu['rsyslog']:.2f} per CPU second"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--parallel", type=int, default=10, help="containers read at once")
    parser.add_argument("--parallel-lines", type=int, default=100_000, help="lines each")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--only", choices=("single", "parallel"), default=None)
    args = parser.parse_args()
    if shutil.which("rsyslogd") is None:
        print("rsyslogd not found: apt-get install -y rsyslog", file=sys.stderr)
        return 2
    rng = random.Random(42)
    with tempfile.TemporaryDirectory(prefix="nk-throughput-", dir=args.dir) as tmp:
        work = Path(tmp)
        print(f"machine: {os.cpu_count()} cores, {sys.version.split()[0]}, {platform_line()}")
        if args.only in (None, "single"):
            root = work / "single"
            log = write_log(root, f"{rng.getrandbits(256):064x}", args.lines, rng)
            size = log.stat().st_size
            os.sync()  # the input's writeback must not overlap the first runs
            print(
                f"input: 1 file, {args.lines:,} lines, {size / 1e6:.1f} MB "
                f"(avg {size / args.lines:.0f} B/line)"
            )
            compare("1 file", root, [log], args.lines, args.runs, work)
        if args.only in (None, "parallel"):
            root = work / "parallel"
            logs = [
                write_log(root, f"{rng.getrandbits(256):064x}", args.parallel_lines, rng)
                for _ in range(args.parallel)
            ]
            total = args.parallel * args.parallel_lines
            os.sync()
            compare(f"{args.parallel} files", root, logs, total, args.runs, work)
    return 0


def platform_line() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return model or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
