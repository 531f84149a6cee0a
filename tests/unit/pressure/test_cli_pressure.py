"""`nodekeeper pressure`: the figures read now, conditions judged on them, quiet in a pipe."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nodekeeper import cli
from tests.unit.pressure.conftest import FIXTURES

ROOTS = [
    "--proc-root",
    str(FIXTURES / "proc"),
    "--cgroup-root",
    str(FIXTURES / "cgroup-hybrid"),
    "--docker-root",
    str(FIXTURES),
]


def test_conditions_are_judged_with_the_settings_thresholds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NODEKEEPER_PRESSURE_ENTER_RATIO", "0.5")
    monkeypatch.setenv("NODEKEEPER_PRESSURE_EXIT_RATIO", "0.4")

    assert cli.main(["pressure", "--json", "--no-workloads", *ROOTS]) == 0

    report = json.loads(capsys.readouterr().out)
    assert report["conditions_basis"] == "instantaneous"
    cpu = report["conditions"][0]
    assert (cpu["type"], cpu["status"]) == ("NodekeeperCPUPressure", "False")  # 42 % < 50 %
    assert "would be False at these figures" in cpu["message"]
    assert report["psi"]["cpu"]["some"]["avg10"] == 0.42
    assert report["cgroups"]["layout"] == "hybrid"
    assert report["totals"]["disk_path"] == str(FIXTURES)
    assert report["workloads"] == {"skipped": "left out (--no-workloads)", "containers": []}


def test_the_roots_default_to_the_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Inside the agent's pod, NODEKEEPER_PROC_ROOT=/host/proc: the command reads the host too.
    monkeypatch.setenv("NODEKEEPER_PROC_ROOT", str(FIXTURES / "proc"))
    monkeypatch.setenv("NODEKEEPER_CGROUP_ROOT", str(FIXTURES / "cgroup-v1"))

    assert cli.main(["pressure", "--no-workloads"]) == 0

    text = capsys.readouterr().out
    assert "  cpu             42.0%" in text
    assert "cgroups: v1 at " in text
    assert (
        "NodekeeperCPUPressure      True    CPUPressure        cpu some avg10 42.0% >= 10.0%: "
        "would be True at these figures, once they last 10 s"
    ) in text


def test_without_a_docker_socket_the_workloads_are_left_out_and_it_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    socket = tmp_path / "no-docker.sock"

    assert cli.main(["pressure", "--json", "--docker-host", f"unix://{socket}", *ROOTS]) == 0

    workloads = json.loads(capsys.readouterr().out)["workloads"]
    assert workloads["containers"] == []
    assert workloads["skipped"] == (
        f"left out: no Docker socket at {socket} (--docker-host, or --no-workloads)"
    )


def test_bad_settings_end_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NODEKEEPER_PRESSURE_ENTER_RATIO", "lots")

    assert cli.main(["pressure", "--no-workloads", *ROOTS]) == cli.EXIT_SETTINGS

    err = capsys.readouterr().err
    assert err.startswith("nodekeeper: setting pressure_enter_ratio")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("output", [["--json"], []])
def test_a_reader_that_goes_away_ends_it_quietly(output: list[str]) -> None:
    # `nodekeeper pressure --json | head`: head exits, the next write meets a closed pipe.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "nodekeeper.cli", "pressure", "--no-workloads", *output, *ROOTS],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)

    assert (done.returncode, done.stderr.decode()) == (0, "")
