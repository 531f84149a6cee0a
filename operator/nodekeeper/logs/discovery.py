"""Which containers exist on this node and how they log, read from Docker's own files.

The log pipeline must not depend on the Docker API being up (a restarting dockerd must not stop
tailing) and logs/ may not import the SDK, so discovery reads what dockerd keeps per container
under its root (``/var/lib/docker/containers/<id>/``, injected for tests):

- ``config.v2.json``: ``ID``, ``Name`` (with a leading ``/``), ``Config.Image``,
  ``Config.Labels``, ``LogPath`` (empty until the container first starts, and for drivers that
  keep no file);
- ``hostconfig.json``: ``LogConfig.Type`` and ``LogConfig.Config`` (``max-file``,
  ``compress``).

dockerd replaces both files atomically (temporary file, then rename), but a container's
directory exists briefly before them. A missing, unreadable or half-written file therefore means
"not yet": :func:`read_container` returns ``None`` and never raises; the caller tries again on
the next ``config`` notification or scan.

:func:`own_container_id` finds the agent's own container, which it must not tail (its own log
lines would feed themselves).
"""

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict, cast

import orjson

from nodekeeper.logs.records import ContainerInfo

logger = logging.getLogger(__name__)

DOCKER_CONTAINERS = Path("/var/lib/docker/containers")
CONFIG_FILE = "config.v2.json"
HOSTCONFIG_FILE = "hostconfig.json"
CONFIG_FILES = frozenset({CONFIG_FILE, HOSTCONFIG_FILE})

_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
# strconv.ParseBool, which Docker uses for the json-file options
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


class RawContainerConfig(TypedDict, total=False):
    """``Config`` inside config.v2.json (the parts we read)."""

    Image: str
    Labels: dict[str, str] | None


class RawConfigV2(TypedDict, total=False):
    """config.v2.json, as dockerd writes it (the parts we read)."""

    ID: str
    Name: str
    Config: RawContainerConfig
    LogPath: str
    State: dict[str, object]  # Running, Pid, ... (rewritten by dockerd on every change)


class RawLogConfig(TypedDict, total=False):
    Type: str
    Config: dict[str, str] | None


class RawHostConfig(TypedDict, total=False):
    """hostconfig.json, as dockerd writes it (the parts we read)."""

    LogConfig: RawLogConfig


def is_container_id(name: str) -> bool:
    """Whether ``name`` is a full container id (64 lowercase hex digits)."""
    return _CONTAINER_ID.fullmatch(name) is not None


def read_container(directory: Path) -> ContainerInfo | None:
    """What ``<root>/<id>`` says about its container; ``None`` while it is not readable yet.

    ``log_path`` is rebased onto ``directory``: dockerd records the host path, which differs
    when the agent sees Docker's root through a mount elsewhere (a pod's hostPath, a test root).
    """
    config = _load(directory / CONFIG_FILE)
    host = _load(directory / HOSTCONFIG_FILE)
    if config is None or host is None:
        return None
    raw = cast(RawConfigV2, config)
    raw_host = cast(RawHostConfig, host)

    container_id = raw.get("ID")
    if not isinstance(container_id, str) or container_id != directory.name:
        logger.debug("%s: ID %r does not name its directory; skipped", directory, container_id)
        return None
    section = _mapping(raw.get("Config"))
    labels = _strings(section.get("Labels"))
    image = section.get("Image")
    name = raw.get("Name")
    log_path = raw.get("LogPath")
    log_path = log_path if isinstance(log_path, str) else ""

    log_config = _mapping(raw_host.get("LogConfig"))
    driver = log_config.get("Type")
    driver = driver if isinstance(driver, str) else ""
    if not driver and log_path:
        driver = "json-file"  # hostconfig written before dockerd filled in its default driver
    options = _strings(log_config.get("Config"))

    return ContainerInfo(
        id=container_id,
        name=name.removeprefix("/") if isinstance(name, str) else "",
        image=image if isinstance(image, str) else "",
        labels=labels,
        log_driver=driver,
        log_path=_rebase(log_path, directory),
        max_files=_max_files(options.get("max-file")),
        max_size_bytes=max_size_bytes(options.get("max-size")),
        compress=options.get("compress", "") in _TRUE,
        running=_mapping(raw.get("State")).get("Running") is True,
    )


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None  # not written yet, or the container is being removed
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        logger.debug("%s: not complete JSON yet; will read it again", path)
        return None
    return value if isinstance(value, dict) else None


def _mapping(value: object) -> Mapping[str, object]:
    return cast(Mapping[str, object], value) if isinstance(value, dict) else {}


def _strings(value: object) -> dict[str, str]:
    return {str(k): v for k, v in _mapping(value).items() if isinstance(v, str)}


def _rebase(log_path: str, directory: Path) -> str:
    if not log_path:
        return ""
    recorded = Path(log_path)
    if recorded.parent.name == directory.name:
        return str(directory / recorded.name)
    return log_path  # not in the container's directory: no json-file does that; keep it as is


_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
_UNITS = {None: 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}


def max_size_bytes(value: str | None) -> int:
    """json-file ``max-size`` as Docker reads it (binary units: ``10m`` is 10 MiB); 0 when
    unset. An unreadable value counts as the smallest size, 1 byte: callers that trust a large
    size to be safe must not trust one they cannot read."""
    if not value:
        return 0
    match = _SIZE.match(value.strip())
    if match is None:
        return 1
    unit = match.group(2).lower() if match.group(2) else None
    return max(1, int(float(match.group(1)) * _UNITS[unit]))


def _max_files(value: str | None) -> int:
    try:
        count = int(value) if value else 1
    except ValueError:
        return 1
    return max(count, 1)


_Stamp = tuple[int, int, int, int, int, int]  # (ino, mtime_ns, size) of both files


class ContainerCatalog:
    """The containers under Docker's root, re-parsed only when their config files change.

    A file's identity is its inode, mtime_ns and size: dockerd replaces the files by rename, so
    a rewrite changes the inode even when it lands within the same timestamp granularity.
    """

    def __init__(self, root: Path = DOCKER_CONTAINERS) -> None:
        self.root = root
        self._cache: dict[str, tuple[_Stamp, ContainerInfo | None]] = {}
        self.parses = 0  # how many times a container's files were actually read and parsed

    def scan(self) -> dict[str, ContainerInfo]:
        """Every readable container under the root, by id; forgets the ones that are gone."""
        try:
            entries = [entry.name for entry in os.scandir(self.root) if entry.is_dir()]
        except OSError as e:
            logger.warning("cannot list %s: %s", self.root, e)
            entries = []
        present = {name for name in entries if is_container_id(name)}
        for gone in self._cache.keys() - present:
            del self._cache[gone]
        found: dict[str, ContainerInfo] = {}
        for container_id in sorted(present):
            info = self.refresh(container_id)
            if info is not None:
                found[container_id] = info
        return found

    def refresh(self, container_id: str) -> ContainerInfo | None:
        """One container as its files say now; ``None`` while they are missing or incomplete."""
        directory = self.root / container_id
        stamp = _stamp(directory)
        if stamp is None:
            self._cache.pop(container_id, None)
            return None
        cached = self._cache.get(container_id)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        info = read_container(directory)
        self.parses += 1
        self._cache[container_id] = (stamp, info)
        return info

    def get(self, container_id: str) -> ContainerInfo | None:
        """The last known state of a container, without touching the disk."""
        cached = self._cache.get(container_id)
        return cached[1] if cached is not None else None

    def forget(self, container_id: str) -> None:
        self._cache.pop(container_id, None)


def _stamp(directory: Path) -> _Stamp | None:
    try:
        config = os.stat(directory / CONFIG_FILE)
        host = os.stat(directory / HOSTCONFIG_FILE)
    except OSError:
        return None
    return (
        config.st_ino,
        config.st_mtime_ns,
        config.st_size,
        host.st_ino,
        host.st_mtime_ns,
        host.st_size,
    )


# Where a container id shows up in /proc/self/cgroup: cgroupfs driver (v1, or v2 with the host
# cgroup namespace) ``/docker/<id>`` or ``/kubepods/<qos>/pod<uid>/<id>``; systemd driver
# ``/system.slice/docker-<id>.scope``.
_CGROUP_ID = re.compile(r"(?:^|/)(?:docker-)?([0-9a-f]{64})(?:\.scope)?$")
# In /proc/self/mountinfo, the files dockerd bind-mounts into every container it starts. Only
# the mount's root (field 4) counts: on the host, the mount *points* of other containers' shm
# live under the same directory.
_MOUNT_ID = re.compile(r"/containers/([0-9a-f]{64})/(?:hostname|hosts|resolv\.conf)$")


def own_container_id(proc_root: Path = Path("/proc")) -> str | None:
    """The id of the Docker container this process runs in; ``None`` outside a container.

    ``/proc/self/cgroup`` names it unless the container has a private cgroup namespace (the
    default on cgroup v2 hosts), where it reads ``0::/``; ``/proc/self/mountinfo`` then still
    shows which container directory ``/etc/hostname`` was mounted from.
    """
    return _id_from_cgroup(proc_root / "self" / "cgroup") or _id_from_mountinfo(
        proc_root / "self" / "mountinfo"
    )


def _id_from_cgroup(path: Path) -> str | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        cgroup = line.split(":", 2)[-1].rstrip("/")
        match = _CGROUP_ID.search(cgroup)
        if match:
            return match.group(1)
    return None


def _id_from_mountinfo(path: Path) -> str | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split(" ", 5)
        if len(fields) < 5:
            continue
        match = _MOUNT_ID.search(fields[3])
        if match:
            return match.group(1)
    return None
