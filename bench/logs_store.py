"""Benchmark: how fast the log store keeps json-file lines, and how much disk they take.

Writes 1,000,000 realistic records (~150-byte json-file lines from 20 containers: request logs,
with ids, paths, durations and the odd stack trace) in batches of 2,000-5,000, each with its
checkpoint, the way the pipeline's writer does; for sync=normal and sync=full, median of 3.

    .venv/bin/python bench/logs_store.py [--lines 1000000] [--runs 3] [--level 1] [--dir /tmp]

Goal: >= 330k lines/s stored end to end; this store is one stage of that budget. Measured on the
2-core dev machine (zstd 1, 4 KiB pages): ~2.6M lines/s with sync=normal, ~2.4M with sync=full,
150.6 MB of records in ~29 MB on disk (WAL included).
"""

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from nodekeeper.api.times import NANOS, rfc3339_ns
from nodekeeper.logs.records import Batch, Checkpoint, ContainerInfo, FilePosition
from nodekeeper.logs.store import LogStore

CONTAINERS = 20
START_NS = 1_790_000_000 * NANOS
PATHS = ["/api/v1/items", "/api/v1/orders", "/healthz", "/api/v2/users", "/metrics", "/login"]
LEVELS = ["INFO"] * 8 + ["WARN", "ERROR"]


def realistic_records(count: int, rng: random.Random) -> list[bytes]:
    records: list[bytes] = []
    ns = START_NS
    for i in range(count):
        ns += rng.randrange(50_000, 2_000_000)
        if rng.random() < 0.02:
            text = f"    at com.example.Handler.process(Handler.java:{rng.randrange(40, 900)})"
        else:
            text = (
                f"{rfc3339_ns(ns)[:23]}Z {rng.choice(LEVELS)} req={rng.getrandbits(48):012x} "
                f"{rng.choice(PATHS)}/{rng.randrange(100000)} status={rng.choice((200, 200, 404))}"
                f" {rng.randrange(1, 900)}ms"
            )
        stream = "stderr" if i % 7 == 0 else "stdout"
        time_text = rfc3339_ns(ns).rstrip("0").replace(".Z", "Z")
        records.append(f'{{"log":"{text}\\n","stream":"{stream}","time":"{time_text}"}}'.encode())
    return records


def batches_of(records: list[bytes], rng: random.Random) -> list[Batch]:
    batches: list[Batch] = []
    offsets = [0] * CONTAINERS
    at = 0
    while at < len(records):
        size = rng.randrange(2000, 5001)
        chunk = records[at : at + size]
        at += size
        c = len(batches) % CONTAINERS
        read = sum(len(r) + 1 for r in chunk)
        offsets[c] += read
        position = FilePosition(
            f"/var/lib/docker/containers/c{c}/c{c}-json.log", 2049, 1000 + c, b"x" * 256, offsets[c]
        )
        batches.append(
            Batch(
                f"c{c:02d}" + "0" * 60,
                chunk,
                START_NS,
                START_NS + 1,
                read,
                Checkpoint(f"c{c:02d}" + "0" * 60, position),
            )
        )
    return batches


def containers() -> list[ContainerInfo]:
    return [
        ContainerInfo(
            f"c{c:02d}" + "0" * 60,
            f"/app-{c}",
            "example/app:1.0",
            {"io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.name": f"app-{c}"},
            "json-file",
            f"/var/lib/docker/containers/c{c}/c{c}-json.log",
        )
        for c in range(CONTAINERS)
    ]


def run(batches: list[Batch], sync: str, level: int, directory: Path) -> tuple[float, float]:
    """(lines/s, MB on disk) of one run into a fresh store."""
    infos = containers()
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = Path(tmp) / "logs.db"
        lines = sum(b.lines for b in batches)
        with LogStore(path, sync=sync, compression_level=level) as store:  # type: ignore[arg-type]
            started = time.perf_counter()
            for batch in batches:
                store.write([batch], infos)
            elapsed = time.perf_counter() - started
            size = store.size_bytes()
        return lines / elapsed, size / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    rng = random.Random(42)
    records = realistic_records(args.lines, rng)
    raw_mb = sum(len(r) + 1 for r in records) / 1e6
    batches = batches_of(records, rng)
    print(
        f"{args.lines} records, {raw_mb:.1f} MB raw (avg {raw_mb * 1e6 / args.lines:.0f} B), "
        f"{len(batches)} batches, zstd level {args.level}"
    )
    for sync in ("normal", "full"):
        results = [run(batches, sync, args.level, args.dir) for _ in range(args.runs)]
        rate = statistics.median(r[0] for r in results)
        size = statistics.median(r[1] for r in results)
        print(
            f"sync={sync:<6} {rate:>10,.0f} lines/s  {size:6.1f} MB on disk  "
            f"(runs: {', '.join(f'{r[0]:,.0f}' for r in results)})"
        )


if __name__ == "__main__":
    main()
