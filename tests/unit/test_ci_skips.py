"""A skip fails the run in CI (tests/support/skips.py), and stays a skip elsewhere."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SKIPPING = """
import pytest

@pytest.fixture
def unavailable():
    pytest.skip("no such device")

def test_skipped_in_the_test():
    pytest.skip("the filesystem did not cooperate")

def test_skipped_in_a_fixture(unavailable):
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_an_expected_failure():
    assert False

def test_a_pass():
    pass
"""


def run(tmp_path: Path, ci: str | None, source: str = SKIPPING) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [
            *(
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-p",
                "tests.support.skips",
            ),
            *("-q", "-rA", "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("ci", ["true", "1"])
def test_in_ci_every_skip_fails_the_run_with_its_reason(tmp_path: Path, ci: str) -> None:
    result = run(tmp_path, ci)

    assert result.returncode == 1, result.stdout
    assert "1 failed, 1 passed, 1 xfailed, 1 error" in result.stdout
    assert "the filesystem did not cooperate" in result.stdout
    assert "no such device" in result.stdout


def test_in_ci_a_module_level_skip_fails_the_run(tmp_path: Path) -> None:
    source = 'import pytest\npytest.skip("not here", allow_module_level=True)\n'
    result = run(tmp_path, "true", source)

    assert result.returncode != 0, result.stdout
    assert "not here" in result.stdout


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_outside_ci_a_skip_is_a_skip(tmp_path: Path, ci: str | None) -> None:
    result = run(tmp_path, ci)

    assert result.returncode == 0, result.stdout
    assert "1 passed, 2 skipped, 1 xfailed" in result.stdout
