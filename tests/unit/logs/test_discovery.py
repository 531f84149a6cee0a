"""Discovery reads Docker's own files: what a container is, how it logs, and which one we are in.

Fixtures under tests/fixtures/docker/containers/ are trimmed copies of what dockerd 20.10 wrote
for ``docker run --label app=probe --log-opt max-file=3 --log-opt compress=true`` (67b6...), with
variants derived from it: a Kubernetes pod's container (1f1f...), a journald one (3a3a...), and a
json-file container created but never started (4b4b..., no LogPath yet).
tests/fixtures/proc/ holds /proc/self/{cgroup,mountinfo} as seen inside and outside containers.
"""

import os
import shutil
from pathlib import Path

import pytest

from nodekeeper.logs.discovery import (
    ContainerCatalog,
    max_size_bytes,
    own_container_id,
    read_container,
)

FIXTURES = Path(__file__).parents[2] / "fixtures"
CONTAINERS = FIXTURES / "docker" / "containers"
PROBE = "67b6bf3821327c0d4977fda1bf461036aebd229ecd90e284b38d6a61301201a8"
POD = "1f" * 32
JOURNALD = "3a" * 32
CREATED = "4b" * 32


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A copy of the fixture root, so tests can change files."""
    copied = tmp_path / "containers"
    shutil.copytree(CONTAINERS, copied)
    return copied


class TestReadContainer:
    def test_a_started_json_file_container(self, root: Path) -> None:
        info = read_container(root / PROBE)
        assert info is not None
        assert info.id == PROBE
        assert info.name == "probe-discovery"
        assert info.image == "nodekeeper-test/busybox:latest"
        assert info.labels == {"app": "probe"}
        assert info.log_driver == "json-file"
        assert info.max_files == 3
        assert info.max_size_bytes == 2**20  # max-size=1m, as dockerd recorded it
        assert info.compress is True

    def test_log_path_is_found_under_the_root_it_was_read_from(self, root: Path) -> None:
        # dockerd records /var/lib/docker/...; the agent may see that tree mounted elsewhere.
        info = read_container(root / PROBE)
        assert info is not None
        assert info.log_path == str(root / PROBE / f"{PROBE}-json.log")

    def test_a_kubernetes_container_has_its_namespace_and_pod(self, root: Path) -> None:
        info = read_container(root / POD)
        assert info is not None
        assert (info.namespace, info.pod) == ("shop", "web-0")
        assert info.max_files == 1  # no max-file option: no rotation
        assert info.max_size_bytes == 0  # no max-size: the file never rotates
        assert info.compress is False

    def test_a_driver_without_a_file_has_no_log_path(self, root: Path) -> None:
        info = read_container(root / JOURNALD)
        assert info is not None
        assert (info.log_driver, info.log_path) == ("journald", "")

    def test_a_container_never_started_has_no_log_path_yet(self, root: Path) -> None:
        info = read_container(root / CREATED)
        assert info is not None
        assert (info.log_driver, info.log_path) == ("json-file", "")

    def test_a_directory_before_dockerd_writes_its_files_is_not_ready(self, root: Path) -> None:
        (root / ("5c" * 32)).mkdir()
        assert read_container(root / ("5c" * 32)) is None

    @pytest.mark.parametrize("name", ["config.v2.json", "hostconfig.json"])
    def test_a_missing_file_is_not_ready(self, root: Path, name: str) -> None:
        (root / PROBE / name).unlink()
        assert read_container(root / PROBE) is None

    @pytest.mark.parametrize("name", ["config.v2.json", "hostconfig.json"])
    def test_a_half_written_file_is_not_ready(self, root: Path, name: str) -> None:
        path = root / PROBE / name
        path.write_bytes(path.read_bytes()[:100])
        assert read_container(root / PROBE) is None

    @pytest.mark.parametrize("content", [b"", b"[]", b"null", b'{"ID": 5}', b"\xff\xfe"])
    def test_nonsense_is_not_ready_and_does_not_raise(self, root: Path, content: bytes) -> None:
        (root / PROBE / "config.v2.json").write_bytes(content)
        assert read_container(root / PROBE) is None

    def test_fields_of_the_wrong_type_are_left_empty(self, root: Path) -> None:
        (root / PROBE / "config.v2.json").write_text(
            f'{{"ID": "{PROBE}", "Name": 1, "Config": {{"Labels": null, "Image": []}}}}'
        )
        (root / PROBE / "hostconfig.json").write_text(
            '{"LogConfig": {"Type": "json-file", "Config": {"max-file": "many"}}}'
        )
        info = read_container(root / PROBE)
        assert info is not None
        assert (info.name, info.image, dict(info.labels), info.max_files) == ("", "", {}, 1)

    def test_a_config_naming_another_container_is_not_trusted(self, root: Path) -> None:
        os.rename(root / PROBE, root / ("6d" * 32))
        assert read_container(root / ("6d" * 32)) is None


class TestCatalog:
    def test_scan_finds_every_readable_container(self, root: Path) -> None:
        (root / ("5c" * 32)).mkdir()  # not ready yet
        (root / "not-a-container").mkdir()
        found = ContainerCatalog(root).scan()
        assert set(found) == {PROBE, POD, JOURNALD, CREATED}

    def test_unchanged_containers_are_not_parsed_again(self, root: Path) -> None:
        catalog = ContainerCatalog(root)
        catalog.scan()
        parses = catalog.parses
        catalog.scan()
        assert catalog.refresh(PROBE) is not None
        assert catalog.parses == parses

    def test_a_config_replaced_by_rename_is_read_again(self, root: Path) -> None:
        catalog = ContainerCatalog(root)
        before = catalog.refresh(PROBE)
        assert before is not None
        config = root / PROBE / "config.v2.json"
        # the same size, as a rename within one mtime tick would leave it: the inode differs
        replacement = config.read_bytes().replace(b'"app":"probe"', b'"app":"other"')
        temporary = root / PROBE / ".tmp-config.v2.json1"
        temporary.write_bytes(replacement)
        os.utime(temporary, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns))
        os.rename(temporary, config)
        after = catalog.refresh(PROBE)
        assert after is not None
        assert after.labels == {"app": "other"}

    def test_a_half_written_config_is_retried_once_complete(self, root: Path) -> None:
        catalog = ContainerCatalog(root)
        config = root / PROBE / "config.v2.json"
        complete = config.read_bytes()
        config.write_bytes(complete[:50])
        assert catalog.refresh(PROBE) is None
        config.write_bytes(complete)
        assert catalog.refresh(PROBE) is not None

    def test_a_removed_container_is_forgotten(self, root: Path) -> None:
        catalog = ContainerCatalog(root)
        catalog.scan()
        shutil.rmtree(root / PROBE)
        assert catalog.refresh(PROBE) is None
        assert catalog.get(PROBE) is None
        assert PROBE not in catalog.scan()

    def test_a_missing_root_is_empty_not_an_error(self, tmp_path: Path) -> None:
        assert ContainerCatalog(tmp_path / "absent").scan() == {}


class TestOwnContainer:
    @pytest.mark.parametrize(
        "case",
        [
            "docker-cgroup-v1",  # /docker/<id>
            "docker-cgroup-v2-systemd",  # 0::/system.slice/docker-<id>.scope
            "docker-cgroup-v2-private",  # 0::/ (cgroup namespace): found in mountinfo
            "kubernetes-cgroup-v1",  # /kubepods/besteffort/pod<uid>/<id>
        ],
    )
    def test_inside_a_container(self, case: str) -> None:
        assert own_container_id(FIXTURES / "proc" / case) == PROBE

    def test_on_the_host_other_containers_mounts_are_not_ours(self) -> None:
        # the host's mountinfo lists overlay layers and other containers' shm mount points
        assert own_container_id(FIXTURES / "proc" / "host") is None

    def test_without_proc(self, tmp_path: Path) -> None:
        assert own_container_id(tmp_path) is None


@pytest.mark.parametrize(
    ("option", "size"),
    [
        ("10m", 10 * 2**20),  # Docker reads sizes in binary units
        ("10M", 10 * 2**20),
        ("10mb", 10 * 2**20),
        ("1.5k", 1536),
        ("100", 100),
        ("1g", 2**30),
        ("", 0),
        ("junk", 1),  # unreadable: the smallest, so nothing is trusted to be large
    ],
)
def test_max_size_is_read_as_docker_reads_it(option: str, size: int) -> None:
    assert max_size_bytes(option) == size
