"""Benchmark: Docker's timestamp to stored, for 50 real containers writing 100 lines/s each.

The offline agent follows Docker's own root (``/var/lib/docker/containers``, only this run's
containers: ``--log-include name=<prefix>*``); ``--containers`` busybox containers wait for a
common start second, then print ``--rate`` lines a second for ``--seconds``. Two measures:

- the agent's histogram ``nodekeeper_log_latency_seconds`` over the run (one observation per
  stored batch: the Docker time of its *oldest* line to the commit, so an upper bound for every
  line of the batch), as ``histogram_quantile`` would compute it;
- per line: the store keeps no commit time, so this script watches the store from outside (a
  read-only connection polled every ``--poll`` seconds), and takes the poll that first shows a
  block as that block's commit time; each line's latency is then that time minus its Docker
  time, late by at most one poll interval.

    .venv/bin/python bench/logs_latency.py [--containers 50] [--rate 100] [--seconds 30]
        [--poll 0.02] [--writers docker|files]

``--writers files`` appends the lines from this script to fake container directories instead
(one write(2) a line, as dockerd does): the agent's own share, without dockerd's.

Goal: p99 <= 250 ms.
"""

import argparse
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import zstandard
from offline_agent import (
    OfflineAgent,
    histogram_quantile,
    load_arguments,
    make_load,
    note,
    percentile,
    unstored,
    window,
)

from nodekeeper.api.times import docker_time_ns

LATENCY = "nodekeeper_log_latency_seconds"


class StoreWatcher:
    """New blocks of the store, each stamped with the wall time it was first seen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.after = 0
        self.latencies: list[float] = []
        self._db: sqlite3.Connection | None = None
        self._zstd = zstandard.ZstdDecompressor()

    def poll(self) -> int:
        if self._db is None:
            if not self.path.exists():
                return 0
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        rows = self._db.execute(
            "SELECT id, data FROM blocks WHERE id > ? ORDER BY id", (self.after,)
        ).fetchall()
        seen_ns = time.time_ns()
        for block_id, data in rows:
            self.after = block_id
            for line in self._zstd.decompress(data).splitlines():
                record = orjson.loads(line)
                if "nk" in record:
                    continue  # re-encoded by the agent (malformed, merged): no Docker time
                self.latencies.append((seen_ns - docker_time_ns(record["time"])) / 1e9)
        return len(rows)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--rate", type=int, default=100, help="lines per second per container")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--poll", type=float, default=0.02, help="store poll interval (s)")
    load_arguments(parser)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="nk-latency-") as tmp:
        load = make_load(args, "latency", Path(tmp))
        agent = OfflineAgent(load.root, Path(tmp) / "state", *load.agent_args)
        watcher = StoreWatcher(agent.state_dir / "logs.db")
        # The store is polled on a thread of its own: stopping the writers (docker wait, rm)
        # takes seconds, and lines stored meanwhile must not be stamped that late.
        polling = threading.Event()

        def poll_forever() -> None:
            while not polling.is_set():
                watcher.poll()
                time.sleep(args.poll)
            watcher.poll()
            watcher.close()

        poller = threading.Thread(target=poll_forever, name="store poller")
        try:
            agent.wait_ready()
            before = agent.metrics()
            poller.start()
            load.start()
            note(f"{args.containers} {args.writers} writers; they write from {load.start_at}")
            deadline = load.start_at + args.seconds * 3 + 120
            while time.time() < load.start_at + args.seconds and time.time() < deadline:
                agent.check_alive()
                time.sleep(0.5)
            written = load.finish()
            while True:
                stored = agent.lines() - before.get("nodekeeper_log_lines_total", 0.0)
                if stored >= written or time.time() > deadline:
                    break
                agent.check_alive()
                time.sleep(args.poll)
            after = agent.metrics()
        finally:
            polling.set()
            if poller.is_alive():
                poller.join()
            agent.stop()
            load.cleanup()

    hist = window(after, before, LATENCY)
    batches = hist.get(f"{LATENCY}_count", 0.0)
    lines = watcher.latencies
    print(
        f"latency: {args.containers} containers ({args.writers}) x {args.rate} lines/s for "
        f"{args.seconds:g} s ({written:,} lines written, {stored:,.0f} stored)"
    )
    print(
        f"  histogram (per batch, oldest line; {batches:,.0f} batches): "
        f"p50 {histogram_quantile(hist, LATENCY, 0.5) * 1000:.0f} ms, "
        f"p99 {histogram_quantile(hist, LATENCY, 0.99) * 1000:.0f} ms, "
        f"mean {hist.get(f'{LATENCY}_sum', 0.0) / max(batches, 1) * 1000:.0f} ms"
    )
    if lines:
        print(
            f"  per line (store polled every {args.poll * 1000:.0f} ms; {len(lines):,} lines): "
            f"p50 {percentile(lines, 0.5) * 1000:.0f} ms, "
            f"p99 {percentile(lines, 0.99) * 1000:.0f} ms, "
            f"max {max(lines) * 1000:.0f} ms"
        )
    print("  goal: p99 <= 250 ms")
    return unstored(written, stored)


if __name__ == "__main__":
    sys.exit(main())
