"""The agent image: built with no registry (make image), it runs, and the chart's security
context is enough for what the agent does on a node, and needed (root without capabilities).

Needs the Docker engine (scripts/docker-up.sh) and Debian's mirror the first time (debootstrap).
"""

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodekeeper import __version__

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("NODEKEEPER_IMAGE", "nodekeeper:dev")
TEST_IMAGE = os.environ.get("NODEKEEPER_TEST_IMAGE", "nodekeeper-test/busybox:latest")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

# The agent container as charts/nodekeeper/templates/daemonset.yaml runs it, in docker terms
# (Docker's default seccomp profile is the RuntimeDefault the chart asks for).
AS_THE_CHART_RUNS_IT = (
    *("--user", "0:0", "--cap-drop", "ALL", "--read-only"),
    *("--security-opt", "no-new-privileges"),
    *("-v", "/var/lib/docker/containers:/var/lib/docker/containers:ro"),
    *("-v", "/proc:/host/proc:ro", "-v", "/proc/pressure:/host/proc/pressure"),
    *("-v", "/sys/fs/cgroup:/host/sys/fs/cgroup:ro"),
    *("-v", "/var/run/docker.sock:/var/run/docker.sock"),
)


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result


@pytest.fixture(scope="module")
def image() -> str:
    subprocess.run([str(ROOT / "scripts" / "docker-up.sh")], capture_output=True, check=True)
    result = subprocess.run(
        [str(ROOT / "images" / "agent" / "build.sh"), IMAGE],
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    print(result.stdout.strip())
    return IMAGE


@pytest.fixture(scope="module")
def logging_container() -> Iterator[str]:
    """A container with a json-file log on this machine's Docker, as the agent would find."""
    container = docker(
        "run",
        "-d",
        "--label",
        "nodekeeper.io/test=image",
        TEST_IMAGE,
        "sh",
        "-c",
        "echo hello-from-a-container; sleep 120",
    ).stdout.strip()
    try:
        log = f"/var/lib/docker/containers/{container}/{container}-json.log"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (Path(log).exists() and Path(log).stat().st_size):
            time.sleep(0.1)  # dockerd writes the first line asynchronously
        yield container
    finally:
        docker("rm", "-f", container, check=False)


def test_version(image: str) -> None:
    result = docker("run", "--rm", image, "nodekeeper", "--version")
    assert result.stdout.strip() == f"nodekeeper {__version__}"


def test_runs_as_non_root_by_default(image: str) -> None:
    assert docker("run", "--rm", image, "id", "-u").stdout.strip() == "65532"


PROBE = """
import os, sys, docker
container = sys.argv[1]
log = f"/var/lib/docker/containers/{container}/{container}-json.log"
print("log:", open(log).readline().strip())
print("listed:", container in os.listdir("/var/lib/docker/containers"))
print("docker:", docker.from_env().ping())
fd = os.open("/host/proc/pressure/cpu", os.O_RDWR | os.O_NONBLOCK)
os.write(fd, b"some 500000 2000000\\0")
print("psi trigger: set")
for path in ("/host/proc/sys/vm/drop_caches", "/var/lib/docker/containers/x", "/usr/x"):
    try:
        open(path, "w").write("1")
        print("wrote:", path)
    except OSError as e:
        print("refused:", path, e.strerror)
"""


def test_the_charts_security_context_is_enough(image: str, logging_container: str) -> None:
    result = docker(
        "run", "--rm", *AS_THE_CHART_RUNS_IT, image, "python3", "-c", PROBE, logging_container
    )
    out = result.stdout
    assert "hello-from-a-container" in out  # root-owned 0640 log in a 0710 folder
    assert "listed: True" in out
    assert "docker: True" in out  # root:docker 0660 socket
    assert "psi trigger: set" in out  # /proc/pressure is writable
    assert "wrote:" not in out  # but not sysctls, Docker's folder or the image
    assert out.count("refused:") == 3


def test_non_root_could_not_read_container_logs(image: str, logging_container: str) -> None:
    """Why the chart runs as UID 0: a non-root UID reads neither the logs nor the socket."""
    result = docker(
        "run",
        "--rm",
        *AS_THE_CHART_RUNS_IT,
        "--user",
        "65532:65532",
        image,
        "python3",
        "-c",
        PROBE,
        logging_container,
        check=False,
    )
    assert result.returncode != 0
    assert "Permission denied" in result.stderr
