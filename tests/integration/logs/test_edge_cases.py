"""What containers and broken files throw at the agent: no crash, bounded memory, every case
stored as documented and counted.

Long lines and a removal go through real containers. Damage Docker itself never writes (invalid
JSON, NUL bytes, a cut last line, copytruncate, a 50 MB line) goes through a fake containers
directory (``--log-containers-dir``) whose json-file logs the test writes itself.
"""

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from nodekeeper.api.times import rfc3339_ns
from nodekeeper.logs.records import Flag
from tests.integration.logs.conftest import (
    RUN_PREFIX,
    DockerCli,
    LogAgent,
    fake_container,
    new_container_id,
    numbers,
    writer_script,
)
from tests.support.waiting import eventually_sync

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

MAX_LINE = 64 * 1024


def test_a_line_docker_split_is_stored_once_whole_and_one_over_the_limit_is_cut(
    agent_factory: Callable[..., LogAgent], docker: DockerCli
) -> None:
    agent = agent_factory("--log-max-line-bytes", str(MAX_LINE))
    # 40,000 characters: Docker writes 3 partial records (16 KiB each); 100,000: 7, and past
    # the limit.
    script = (
        "echo before; "
        'awk \'BEGIN{s=""; for(i=0;i<40000;i++) s=s "x"; print s}\'; '
        'awk \'BEGIN{s=""; for(i=0;i<100000;i++) s=s "y"; print s}\'; '
        "echo after"
    )
    name, container_id = docker.run("long", script)
    assert docker.wait(name) == 0
    raw = b"".join(path.read_bytes() for path in docker.log_files(container_id))
    assert raw.count(b"\n") > 4, "Docker did not split the long lines"

    lines = agent.wait_drained(container_id)
    assert [line.log[:6] for line in lines] == ["before", "x" * 6, "y" * 6, "after\n"]
    before, split, cut, after = lines
    assert split.log == "x" * 40_000 + "\n"
    assert split.flags == Flag.MERGED
    assert cut.flags == Flag.MERGED | Flag.TRUNCATED
    assert cut.log.endswith("\n")
    assert len(cut.log.encode()) == MAX_LINE
    assert before.flags == after.flags == Flag(0)

    metrics = agent.metrics()
    assert metrics["nodekeeper_log_partial_merges_total"] == 2
    assert metrics["nodekeeper_log_truncated_lines_total"] == 1
    assert metrics["nodekeeper_log_truncated_bytes_total"] == 100_000 - (MAX_LINE - 1)
    assert metrics["nodekeeper_log_lines_total"] == 4


def test_a_container_removed_while_being_read_keeps_its_lines_up_to_the_removal(
    agent: LogAgent, docker: DockerCli
) -> None:
    script = writer_script(tag="R", per_stream=200, batches=100_000, pause_us=20_000)
    name, container_id = docker.run("removed", script)
    eventually_sync(lambda: len(agent.lines(container_id)) >= 4000, what="lines stored", seconds=30)
    docker.remove(name)
    assert not (Path("/var/lib/docker/containers") / container_id).exists()

    eventually_sync(
        lambda: agent.metric("nodekeeper_log_containers_followed") == 0,
        what="the removed container let go",
        seconds=30,
    )
    assert agent.ready()
    assert agent.alive()
    assert agent.metric("nodekeeper_log_files_watched") == 0
    assert agent.checkpoint(container_id) is None  # forgotten: a restart will not look for it
    lines = agent.lines(container_id)
    for stream in ("stdout", "stderr"):
        got = numbers(lines, "R", stream)
        assert got == list(range(1, len(got) + 1)), stream
        assert len(got) >= 1000  # of the >= 4,000 seen before the removal


# --- through files the test writes, as dockerd would (or would not) ---


def record(text: str, stream: str = "stdout") -> bytes:
    return orjson.dumps({"log": text, "stream": stream, "time": rfc3339_ns(time.time_ns())}) + b"\n"


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "containers"
    root.mkdir()
    return root


def fake_agent(factory: Callable[..., LogAgent], root: Path) -> LogAgent:
    return factory("--log-containers-dir", str(root), "--log-max-line-bytes", str(MAX_LINE))


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as file:
        file.write(data)


def test_invalid_json_and_nul_bytes_are_kept_raw_flagged_and_counted(
    agent_factory: Callable[..., LogAgent], fake_root: Path
) -> None:
    container_id = new_container_id()
    log = fake_container(fake_root, container_id, f"{RUN_PREFIX}-damaged")
    append(
        log,
        record("one\n")
        + b'{"log":"cut in the middle\n'  # not JSON
        + b"\x00" * 300  # what a crash leaves in a preallocated file, then a good record
        + b"\n"
        + record("two \u0000 escaped\n")  # a NUL Docker escaped: valid, kept as written
        + b"\xff\xfe not utf-8\n"
        + record("three\n"),
    )
    agent = fake_agent(agent_factory, fake_root)
    lines = agent.wait_drained(container_id)

    assert [(line.stream, line.flags) for line in lines] == [
        ("stdout", Flag(0)),
        ("unknown", Flag.MALFORMED),
        ("unknown", Flag.MALFORMED),
        ("stdout", Flag(0)),
        ("unknown", Flag.MALFORMED),
        ("stdout", Flag(0)),
    ]
    assert lines[0].log == "one\n"
    assert lines[5].log == "three\n"
    assert lines[1].log == '{"log":"cut in the middle\n'
    assert lines[2].log == "\x00" * 300 + "\n"
    assert lines[3].log == "two \u0000 escaped\n"
    assert lines[4].log == "\\xff\\xfe not utf-8\n"
    assert agent.metric("nodekeeper_log_malformed_lines_total") == 3
    assert agent.ready()


def test_a_cut_last_line_waits_for_its_end_and_is_stored_raw_when_it_never_comes(
    agent_factory: Callable[..., LogAgent], fake_root: Path
) -> None:
    finished_id, abandoned_id = new_container_id(), new_container_id()
    finished = fake_container(fake_root, finished_id, f"{RUN_PREFIX}-cut-a")
    abandoned = fake_container(fake_root, abandoned_id, f"{RUN_PREFIX}-cut-b")
    whole = record("the last line\n")
    for log in (finished, abandoned):
        append(log, record("first\n") + whole[:20])
    agent = fake_agent(agent_factory, fake_root)

    def first_lines_stored() -> bool:
        return all(len(agent.lines(cid)) == 1 for cid in (finished_id, abandoned_id))

    eventually_sync(first_lines_stored, what="the complete lines stored", seconds=30)
    # The cut line is not stored while it may still be finished: it is the whole lag.
    assert agent.metric("nodekeeper_log_lag_bytes") == 2 * 20

    append(finished, whole[20:])  # the writer finishes it: stored once, whole
    shutil.rmtree(fake_root / abandoned_id)  # the container is removed: it never will be
    lines = agent.wait_drained(finished_id)
    assert [line.log for line in lines] == ["first\n", "the last line\n"]
    assert lines[1].flags == Flag(0)

    eventually_sync(
        lambda: agent.metric("nodekeeper_log_containers_followed") == 1,
        what="the removed container let go",
        seconds=30,
    )
    lines = agent.lines(abandoned_id)
    assert [line.log for line in lines] == ["first\n", whole[:20].decode() + "\n"]
    assert lines[1].flags == Flag.MALFORMED
    assert agent.metric("nodekeeper_log_malformed_lines_total") == 1


def test_copytruncate_restarts_reading_at_zero_and_is_counted(
    agent_factory: Callable[..., LogAgent], fake_root: Path
) -> None:
    container_id = new_container_id()
    log = fake_container(fake_root, container_id, f"{RUN_PREFIX}-copytruncate")
    append(log, b"".join(record(f"old {n}\n") for n in range(100)))
    agent = fake_agent(agent_factory, fake_root)
    eventually_sync(
        lambda: len(agent.lines(container_id)) == 100, what="the old lines stored", seconds=30
    )

    # logrotate's copytruncate: the file is cut to 0 in place and the writer goes on in it.
    os.truncate(log, 0)
    append(log, b"".join(record(f"new {n}\n") for n in range(30)))
    lines = agent.wait_drained(container_id)
    assert [line.log for line in lines] == [f"old {n}\n" for n in range(100)] + [
        f"new {n}\n" for n in range(30)
    ]
    # Cut again, this time rewritten past the old offset before the agent looks: the first
    # bytes (a nanosecond timestamp) tell it is another file.
    assert os.stat(log).st_size < 100 * len(record("old 00\n"))
    os.truncate(log, 0)
    append(log, b"".join(record(f"newer {n}\n") for n in range(300)))
    lines = agent.wait_drained(container_id)
    assert [line.log for line in lines[130:]] == [f"newer {n}\n" for n in range(300)]
    assert len(lines) == 430
    assert agent.metric("nodekeeper_log_truncations_total") == 2
    assert agent.metric("nodekeeper_log_lost_bytes_total") == 0


# The settings that bound what a reader holds, small, so that a 50 MB line cannot hide in them.
READ_CHUNK = 64 * 1024
QUEUE = 2**20


def test_a_50_mb_line_without_newline_keeps_memory_bounded_and_the_agent_serving(
    agent_factory: Callable[..., LogAgent], fake_root: Path
) -> None:
    container_id = new_container_id()
    log = fake_container(fake_root, container_id, f"{RUN_PREFIX}-huge")
    append(log, record("before\n"))
    agent = agent_factory(
        *("--log-containers-dir", str(fake_root)),
        *("--log-max-line-bytes", str(MAX_LINE)),
        *("--log-read-chunk-bytes", str(READ_CHUNK)),
        *("--log-queue-bytes", str(QUEUE)),
    )
    agent.wait_drained(container_id)
    # The baseline is this agent's own memory, serving and idle; its peak is counted from here
    # (the kernel's high-water mark reset), not from start-up.
    _reset_peak_rss(agent.pid)
    baseline = agent.rss_bytes()

    chunk = b"z" * 2**20
    for _ in range(50):
        append(log, chunk)
    append(log, b"\n" + record("after\n"))
    lines = agent.wait_drained(container_id)

    assert agent.ready()
    assert agent.alive()
    assert lines[0].log == "before\n"
    assert lines[-1].log == "after\n"
    garbage = lines[1:-1]
    # Handed over in pieces of at most the bound, each cut to the line limit and flagged.
    assert garbage
    assert all(Flag.MALFORMED in line.flags for line in garbage)
    assert all(len(line.log.encode()) <= MAX_LINE for line in garbage)
    peak = _peak_rss(agent.pid)
    # What the settings let a reader hold: a look for a line's end (4 lines and 64 KiB, the
    # follower's tail bound), a read chunk, the queue; twice over for the copies a parse and a
    # store batch make, and 16 MiB for the allocator and SQLite. Holding the line is 50 MiB.
    allowed = 2 * (4 * MAX_LINE + 64 * 1024 + READ_CHUNK + QUEUE) + 16 * 2**20
    grown = peak - baseline
    print(f"RSS: {baseline / 2**20:.1f} MiB before, grew {grown / 2**20:.1f} MiB at the peak")
    assert grown < allowed, f"grew {grown / 2**20:.1f} MiB, allowed {allowed / 2**20:.1f} MiB"


def _reset_peak_rss(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # 5: reset VmHWM to the current RSS


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")
