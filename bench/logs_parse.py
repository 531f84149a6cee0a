"""Benchmark: json-file parsing, the hot path of log tailing (goal: >= 1,000,000 lines/s).

Builds 1,000,000 json-file lines in memory as dockerd writes them (messages of about 100 bytes
on both streams, one 40 KiB line split into 16 KiB partials every 10,000 lines), cuts them into
1 MiB chunks at newlines, as the follower reads them, and times ``JsonFileParser.parse`` over all
chunks. Prints the median of the runs.

    .venv/bin/python bench/logs_parse.py [--lines 1000000] [--runs 3] [--chunk-bytes N] [--profile]
"""

import argparse
import cProfile
import pstats
import random
import statistics
import time

import orjson

from nodekeeper.logs.parsing import JsonFileParser

CHUNK_BYTES = 1024 * 1024
PARTIAL_BYTES = 16 * 1024
LONG_LINE_EVERY = 10_000
MAX_LINE_BYTES = 1024 * 1024
START_NS = 1_772_000_000 * 1_000_000_000
# fmt: off
WORDS = [
    "GET", "POST", "/api/v1/items", "/healthz", "200", "404", "500", "ms", "user=alice",
    "user=bob", "request_id", "connection", "reset", "retrying", "in", "backoff", "upstream",
    "timeout", "cache", "hit", "miss", "INFO", "WARN", "ERROR", "worker", "started", "finished",
    "queue", "depth", "bytes", "latency",
]
# fmt: on


def docker_time(ns: int) -> str:
    """RFC 3339 as Docker writes it: nanoseconds with trailing zeros trimmed."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{whole}.{digits}Z" if digits else f"{whole}Z"


def json_file_lines(count: int, rng: random.Random) -> list[bytes]:
    """``count`` json-file lines; a long line counts once per partial record."""
    lines: list[bytes] = []
    ns = START_NS
    while len(lines) < count:
        ns += rng.randrange(1_000, 2_000_000)
        stream = "stderr" if rng.random() < 0.2 else "stdout"
        if len(lines) % LONG_LINE_EVERY == LONG_LINE_EVERY - 1:
            text = "".join(rng.choice(WORDS) + " " for _ in range(40 * 1024 // 6))[: 40 * 1024]
            for start in range(0, len(text), PARTIAL_BYTES):
                log = text[start : start + PARTIAL_BYTES]
                last = start + PARTIAL_BYTES >= len(text)
                text_now = log + ("\n" if last else "")
                record = {"log": text_now, "stream": stream, "time": docker_time(ns)}
                lines.append(orjson.dumps(record))
            continue
        message = ""
        while len(message) < 100:
            message += rng.choice(WORDS) + " "
        record = {"log": message[:100] + "\n", "stream": stream, "time": docker_time(ns)}
        lines.append(orjson.dumps(record))
    return lines[:count]


def chunks_of(lines: list[bytes], chunk_bytes: int) -> list[bytes]:
    """The bytes cut into chunks of about ``chunk_bytes``, each ending at a newline."""
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        current.append(line)
        size += len(line) + 1
        if size >= chunk_bytes:
            chunks.append(b"\n".join(current) + b"\n")
            current, size = [], 0
    if current:
        chunks.append(b"\n".join(current) + b"\n")
    return chunks


def run(chunks: list[bytes]) -> tuple[float, int]:
    """Seconds to parse every chunk with a fresh parser, and the records produced."""
    parser = JsonFileParser(MAX_LINE_BYTES)
    parse = parser.parse
    now_ns = time.time_ns()
    start = time.perf_counter()
    for chunk in chunks:
        parse(chunk, now_ns)
    elapsed = time.perf_counter() - start
    assert parser.counters.malformed == 0, parser.counters
    return elapsed, parser.counters.lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunk-bytes", type=int, default=CHUNK_BYTES)
    parser.add_argument("--profile", action="store_true", help="cProfile one run")
    args = parser.parse_args()

    lines = json_file_lines(args.lines, random.Random(1))
    chunks = chunks_of(lines, args.chunk_bytes)
    total = sum(len(c) for c in chunks)
    print(
        f"{len(lines):,} json-file lines, {total / 2**20:.1f} MiB in {len(chunks)} chunks, "
        f"{total / len(lines):.0f} bytes a line"
    )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(run, chunks)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(8)

    timings = []
    for n in range(args.runs):
        elapsed, records = run(chunks)
        timings.append(elapsed)
        print(f"run {n + 1}: {len(lines) / elapsed:,.0f} lines/s ({records:,} records)")
    median = statistics.median(timings)
    print(
        f"median of {args.runs}: {len(lines) / median:,.0f} lines/s, "
        f"{median / len(lines) * 1e6:.3f} µs/line, {total / median / 2**20:.0f} MiB/s"
    )


if __name__ == "__main__":
    main()
