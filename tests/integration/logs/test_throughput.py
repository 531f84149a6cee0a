"""20,000 lines/s through Docker's json-file rotation into the store: every line once, in order."""

import pytest

from nodekeeper.api.times import docker_time_ns
from tests.integration.logs.conftest import (
    DockerCli,
    LogAgent,
    cli_lines,
    numbers,
    writer_script,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WRITERS = 2
PER_STREAM = 400  # lines per stream per batch: 800 lines a batch
BATCHES = 70
PAUSE_US = 50_000  # 800 lines per ~55 ms: ~14,000 lines/s per container, ~4 s


def test_every_line_is_stored_once_in_order_at_20k_lines_per_second(
    agent: LogAgent, docker: DockerCli
) -> None:
    script = {
        f"W{index}": writer_script(
            tag=f"W{index}", per_stream=PER_STREAM, batches=BATCHES, pause_us=PAUSE_US, pad=40
        )
        for index in range(WRITERS)
    }
    started = [
        (tag, *docker.run("rate", text, "--log-opt", "max-size=1m", "--log-opt", "max-file=3"))
        for tag, text in script.items()
    ]
    for _, name, _ in started:
        assert docker.wait(name) == 0

    total = PER_STREAM * BATCHES
    first_ns: list[int] = []
    last_ns: list[int] = []
    for tag, _, container_id in started:
        lines = agent.wait_drained(container_id)
        for stream in ("stdout", "stderr"):
            assert numbers(lines, tag, stream) == list(range(1, total + 1)), stream
        assert len(lines) == 2 * total
        first_ns.append(min(docker_time_ns(line.time) for line in lines))
        last_ns.append(max(docker_time_ns(line.time) for line in lines))

    metrics = agent.metrics()
    # Each writer produced ~7 MB into 1 MB files: the agent followed every rotation.
    assert metrics["nodekeeper_log_rotations_total"] >= WRITERS * 4
    assert metrics["nodekeeper_log_lines_total"] == WRITERS * 2 * total
    assert metrics["nodekeeper_log_lost_bytes_total"] == 0
    assert metrics["nodekeeper_log_lost_files_total"] == 0
    assert metrics["nodekeeper_log_malformed_lines_total"] == 0

    # The figure this test stands for, from Docker's own timestamps (reported, not asserted).
    seconds = (max(last_ns) - min(first_ns)) / 1e9
    rate = WRITERS * 2 * total / seconds
    print(
        f"{WRITERS * 2 * total} lines in {seconds:.2f} s by Docker's clock: {rate:,.0f} lines/s;"
        f" rotations followed: {metrics['nodekeeper_log_rotations_total']:.0f}"
    )

    # What a user reads with `nodekeeper logs -o json` is the same, every page of it.
    tag, _, container_id = started[0]
    shown = cli_lines(agent.state_dir, container_id)
    assert [entry["log"] for entry in shown if entry["stream"] == "stdout"] == [
        f"{tag} out {n} {'p' * 40}\n" for n in range(1, total + 1)
    ]
