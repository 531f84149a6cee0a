"""Benchmark: what the agent costs while 50 containers log 20 lines/s each for 5 minutes.

The offline agent follows Docker's own root (only this run's containers: ``--log-include
name=<prefix>*``). First ``--idle`` seconds with nothing to follow: the idle agent's RSS and CPU.
Then ``--containers`` busybox containers print ``--rate`` lines a second each for
``--seconds``, all starting at one second. CPU is utime + stime of the agent's process (every
thread) from /proc/PID/stat over the load window, as a percentage of one core; RSS is sampled
every ``--sample`` seconds from /proc/PID/statm.

    .venv/bin/python bench/logs_overhead.py [--containers 50] [--rate 20] [--seconds 300]
        [--writers docker|files]

``--writers files`` appends the lines from this script to fake container directories instead
(one write(2) a line, as dockerd does): the agent's own share, without dockerd's.

Goals: CPU <= 3 % of one core; RSS flat, and at most 30 MB above the idle agent.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from offline_agent import (
    OfflineAgent,
    cpu_seconds,
    lines_written,
    load_arguments,
    make_load,
    note,
    rss_bytes,
    unstored,
)

MB = 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--rate", type=int, default=20, help="lines per second per container")
    parser.add_argument("--seconds", type=float, default=300.0, help="duration of the load")
    parser.add_argument("--idle", type=float, default=30.0, help="idle measurement first (s)")
    parser.add_argument("--sample", type=float, default=10.0, help="RSS sample interval (s)")
    load_arguments(parser)
    args = parser.parse_args()

    expected = lines_written(args.rate, args.seconds) * args.containers
    rss_load: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory(prefix="nk-overhead-") as tmp:
        load = make_load(args, "overhead", Path(tmp))
        agent = OfflineAgent(load.root, Path(tmp) / "state", *load.agent_args)
        try:
            agent.wait_ready()
            time.sleep(2)  # start-up settles (first pressure sample, first ticks)
            idle_cpu0, idle_t0 = cpu_seconds(agent.pid), time.monotonic()
            idle_rss: list[int] = []
            while time.monotonic() - idle_t0 < args.idle:
                idle_rss.append(rss_bytes(agent.pid))
                time.sleep(min(args.sample, 5.0))
            idle_cpu = (cpu_seconds(agent.pid) - idle_cpu0) / (time.monotonic() - idle_t0)
            idle = statistics.median(idle_rss)

            lines0 = agent.lines()
            load.start()
            note(f"{args.containers} {args.writers} writers; they write from {load.start_at}")
            while time.time() < load.start_at + 2:  # every container is writing
                time.sleep(0.1)
            cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
            end = load.start_at + args.seconds - 1
            while time.time() < end:
                agent.check_alive()
                rss_load.append((time.monotonic() - t0, rss_bytes(agent.pid)))
                time.sleep(min(args.sample, max(0.0, end - time.time())))
            cpu = (cpu_seconds(agent.pid) - cpu0) / (time.monotonic() - t0)
            window_seconds = time.monotonic() - t0
            written = load.finish()
            deadline = time.monotonic() + 60
            while agent.lines() - lines0 < written and time.monotonic() < deadline:
                time.sleep(0.5)
            stored = agent.lines() - lines0
            lag = agent.metrics().get("nodekeeper_log_lag_bytes", 0.0)
        finally:
            agent.stop()
            load.cleanup()

    values = [rss for _, rss in rss_load]
    half = len(values) // 2
    first_half = statistics.mean(values[:half]) if half else float("nan")
    second_half = statistics.mean(values[half:]) if half else float("nan")
    print(
        f"overhead: {args.containers} containers ({args.writers}) x {args.rate} lines/s for "
        f"{args.seconds:g} s (CPU window {window_seconds:.0f} s)"
    )
    print(
        f"  lines: {expected:,} meant, {written:,} written by Docker, {stored:,.0f} stored "
        f"(lag {lag:,.0f} bytes at the end)"
    )
    print(f"  idle agent: RSS {idle / MB:.1f} MB, CPU {idle_cpu * 100:.2f} % of one core")
    print(f"  under load: CPU {cpu * 100:.2f} % of one core (goal <= 3 %)")
    print(
        f"  RSS under load: min {min(values) / MB:.1f} MB, max {max(values) / MB:.1f} MB, "
        f"max - idle {(max(values) - idle) / MB:+.1f} MB (goal <= +30 MB); "
        f"second half - first half {(second_half - first_half) / MB:+.2f} MB"
    )
    print(
        "  RSS samples (s: MB): " + ", ".join(f"{at:.0f}: {rss / MB:.1f}" for at, rss in rss_load)
    )
    return unstored(written, stored)


if __name__ == "__main__":
    sys.exit(main())
