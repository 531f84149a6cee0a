"""Control groups: the limits, usage, OOM kills, throttling and PSI of the node, a container, us.

Three layouts exist in the field and this module reads all of them from one injected root
(``/sys/fs/cgroup`` on a real node):

- **v1**: one mount per controller (``memory/``, ``cpu/``, ...), each with its own tree;
- **v2**: one unified tree (``cgroup.controllers`` at the root);
- **hybrid**: v1 controllers plus a v2 tree at ``unified/`` that holds no controllers, only
  ``*.pressure`` files. Memory and CPU figures then come from v1, PSI from the unified tree.

Absent files are normal (a v1 host has no ``memory.events``, the v2 root has no
``memory.max``, a container's cgroup vanishes when it exits): the field is ``None``, its name is
in :attr:`CgroupStats.unknown`, a warning is logged once per file and scope, and nothing raises.
``memory_limit_bytes is None`` with ``"memory_limit_bytes" not in unknown`` means *unlimited*.
Malformed content (garbage, a truncated line, a word where a number belongs) is treated like an
absent file: the fields it holds are unknown, one warning per file names it and what was wrong,
and every such read is counted in :attr:`CgroupReader.malformed`; nothing raises.

The agent's own cgroup needs care on v2. A pod there gets a private cgroup namespace, in which
``/proc/self/cgroup`` reads ``0::/`` (paths are relative to the namespace's root), so looking
that path up in the host's tree would find the host's root cgroup. :meth:`CgroupReader.agent`
therefore compares the agent's cgroup namespace with the host's (the ``ns/cgroup`` links of
``<proc>/self`` and ``<proc>/1``: with the host's /proc mounted at ``/host/proc``, pid 1 is the
host's init) and, when they differ, reads its figures from the container's own view of the
cgroup filesystem (``own_root``, ``/sys/fs/cgroup`` inside the pod), whose root is the agent's
cgroup. A pod usually may not read init's link (ptrace rules: EACCES); then ``0::/`` on a v2 host
is taken to mean a namespace too, since no agent runs in the host's root cgroup itself, and if it
did, its own view would be that same root. v1 and hybrid hosts are read as before.
"""

import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal, TypeVar

from nodekeeper.pressure.absence import AbsenceLog
from nodekeeper.pressure.psi import RESOURCES, PsiSample, Resource, parse_psi

logger = logging.getLogger(__name__)

T = TypeVar("T")

Layout = Literal["v1", "v2", "hybrid", "none"]
Scope = Literal["node", "container", "agent"]
Namespace = Literal["host", "private", "unknown"]

# cgroup v1 reports "no limit" as the largest page-aligned counter (PAGE_COUNTER_MAX * page
# size: 9223372036854771712 with 4 KiB pages, less with 64 KiB pages). Nothing real is that big.
V1_UNLIMITED_FROM = 2**62

_V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "blkio", "io", "pids")


@dataclasses.dataclass(frozen=True)
class CgroupHierarchy:
    """Which layout the host uses and where its trees are mounted."""

    layout: Layout
    root: Path
    unified: Path | None  # the v2 tree: root itself (v2) or root/unified (hybrid)
    controllers: Mapping[str, Path]  # v1 controller name -> its mount


@dataclasses.dataclass(frozen=True)
class Cgroup:
    """Where one cgroup's files live: the memory and cpu directories and the v2 pressure one."""

    name: str  # relative to the hierarchy root; "/" for the root
    scope: Scope
    version: Literal[1, 2]  # format of the memory and cpu files
    memory: Path | None
    cpu: Path | None
    pressure: Path | None  # a v2 directory with {cpu,memory,io}.pressure
    is_root: bool = False


@dataclasses.dataclass(frozen=True)
class CgroupStats:
    memory_current_bytes: int | None
    memory_limit_bytes: int | None  # None: unlimited, or unknown when named in `unknown`
    memory_working_set_bytes: int | None  # current minus inactive file pages (kubelet's measure)
    oom_events: int | None  # times the limit was hit and reclaim failed (v2 only)
    oom_kill_events: int | None  # processes the OOM killer killed in this cgroup
    cpu_quota_cores: float | None  # None: no quota, or unknown when named in `unknown`
    throttled_periods: int | None
    throttled_seconds: float | None
    psi: Mapping[Resource, PsiSample]  # only resources whose v2 *.pressure file exists
    unknown: frozenset[str] = frozenset()

    @property
    def memory_limited(self) -> bool | None:
        if "memory_limit_bytes" in self.unknown:
            return None
        return self.memory_limit_bytes is not None


def detect_hierarchy(root: Path = Path("/sys/fs/cgroup")) -> CgroupHierarchy:
    """The layout of the cgroup filesystem under ``root``."""
    if (root / "cgroup.controllers").is_file():
        return CgroupHierarchy(layout="v2", root=root, unified=root, controllers={})
    controllers = {
        name: root / name for name in _V1_CONTROLLERS if (root / name / "cgroup.procs").is_file()
    }
    unified = root / "unified"
    has_unified = (unified / "cgroup.controllers").is_file()
    if controllers:
        layout: Layout = "hybrid" if has_unified else "v1"
        return CgroupHierarchy(
            layout=layout,
            root=root,
            unified=unified if has_unified else None,
            controllers=controllers,
        )
    if has_unified:
        return CgroupHierarchy(layout="v2", root=root, unified=unified, controllers={})
    return CgroupHierarchy(layout="none", root=root, unified=None, controllers={})


def container_candidates(container_id: str) -> tuple[str, ...]:
    """Where Docker puts a container's cgroup: cgroupfs driver, then the systemd driver."""
    return (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope")


class CgroupReader:
    """Finds cgroups (node, a Docker container, this agent) and reads their figures."""

    def __init__(
        self,
        root: Path = Path("/sys/fs/cgroup"),
        proc: Path = Path("/proc"),
        own_root: Path = Path("/sys/fs/cgroup"),
    ) -> None:
        self.root = root  # the host's cgroup tree
        self.proc = proc  # the host's /proc
        self.own_root = own_root  # this process's own view of cgroupfs (in a pod: the pod's)
        self.hierarchy = detect_hierarchy(root)
        self._absence = AbsenceLog(logger)
        self._own_view_problems: set[str] = set()

    @property
    def layout(self) -> Layout:
        return self.hierarchy.layout

    @property
    def malformed(self) -> dict[str, int]:
        """Reads that found a file they could not parse, by source (``cgroup``): for a metric."""
        return {"cgroup": self._absence.malformed_reads}

    def node(self) -> Cgroup:
        return self._at("/", scope="node", is_root=True)

    def container(self, container_id: str) -> Cgroup | None:
        """A Docker container's cgroup, or ``None`` when none of the known places has it."""
        for relative in container_candidates(container_id):
            cgroup = self._at(relative, scope="container")
            if any(path is not None and path.is_dir() for path in _dirs(cgroup)):
                return cgroup
        return None

    def agent(self) -> Cgroup:
        """This process's cgroup, from ``<proc>/self/cgroup``; the root when it is unreadable.

        In a private cgroup namespace on v2, the one found in :attr:`own_root` (see the module
        docstring)."""
        source = self.proc / "self" / "cgroup"
        key = ("agent", "cgroup")
        try:
            text = source.read_text()
        except OSError as e:
            self._absence.missing(key, source, what="own cgroup", error=e)
            return self._at("/", scope="agent", is_root=True)
        except ValueError as e:  # UnicodeDecodeError
            self._absence.malformed(key, source, what="own cgroup", problem=f"not text: {e}")
            return self._at("/", scope="agent", is_root=True)
        try:
            v1, v2 = _parse_proc_cgroup(text, source)
        except ValueError as e:
            self._absence.malformed(key, source, what="own cgroup", problem=str(e))
            return self._at("/", scope="agent", is_root=True)
        self._absence.present(key, source, what="own cgroup")
        if self.hierarchy.layout == "v2" and v2 is not None:
            namespaced = self._namespaced(v2)
            if namespaced is not None:
                return namespaced
        return self._own(v1, v2)

    def cgroup_namespace(self) -> Namespace:
        """Whether this process shares the host's cgroup namespace, by ``<proc>``'s ns links."""
        try:
            if os.readlink(self.proc / "self") == "1":
                return "unknown"  # a /proc of our own pid namespace: pid 1 is not the host's init
        except OSError:
            pass  # not a symlink (a fixture tree): nothing to learn from it
        try:
            mine = os.readlink(self.proc / "self" / "ns" / "cgroup")
            hosts = os.readlink(self.proc / "1" / "ns" / "cgroup")
        except OSError:
            return "unknown"  # EACCES without CAP_SYS_PTRACE, or no such links
        return "host" if mine == hosts else "private"

    def _namespaced(self, v2: str) -> Cgroup | None:
        """The agent's v2 cgroup seen through its own cgroup namespace, or ``None`` when it
        shares the host's (or cannot be placed): then the host's tree is right."""
        relative = _relative(v2)
        namespace = self.cgroup_namespace()
        if namespace == "host" or (namespace == "unknown" and relative != ""):
            return None
        if ".." in relative.split("/"):
            # Moved out of its namespace's root after it was created: not under own_root.
            self._own_view_lacking(f"{v2} lies outside the agent's cgroup namespace")
            return None
        if detect_hierarchy(self.own_root).layout != "v2":
            self._own_view_lacking(f"no cgroup v2 tree at {self.own_root}")
            return None
        here = self.own_root / relative
        return Cgroup(v2, "agent", 2, here, here, here, is_root=False)

    def _own(self, v1: Mapping[str, str], v2: str | None) -> Cgroup:
        hierarchy = self.hierarchy
        unified = hierarchy.unified
        pressure = unified / _relative(v2) if unified is not None and v2 is not None else None
        if hierarchy.layout == "v2":
            assert unified is not None
            name = v2 or "/"
            here = unified / _relative(name)
            return Cgroup(name, "agent", 2, here, here, here, is_root=_relative(name) == "")
        memory_path = v1.get("memory", "/")
        cpu_path = v1.get("cpu", "/")
        memory = self._v1_dir("memory", memory_path)
        cpu = self._v1_dir("cpu", cpu_path)
        return Cgroup(
            memory_path,
            "agent",
            1,
            memory,
            cpu,
            pressure,
            is_root=_relative(memory_path) == "" and _relative(cpu_path) == "",
        )

    def _own_view_lacking(self, problem: str) -> None:
        if problem in self._own_view_problems:
            return
        self._own_view_problems.add(problem)
        logger.warning(
            "the agent's own cgroup cannot be found from inside its cgroup namespace (%s); "
            "its limit is unknown, so self-protection uses the memory_limit_bytes setting",
            problem,
            extra={"reason": problem, "own_root": str(self.own_root)},
        )

    def _at(self, name: str, *, scope: Scope, is_root: bool = False) -> Cgroup:
        relative = _relative(name)
        unified = self.hierarchy.unified
        v2_dir = unified / relative if unified is not None else None
        if self.hierarchy.layout == "v2":
            return Cgroup(name, scope, 2, v2_dir, v2_dir, v2_dir, is_root=is_root)
        return Cgroup(
            name,
            scope,
            1,
            self._v1_dir("memory", name),
            self._v1_dir("cpu", name),
            v2_dir,
            is_root=is_root,
        )

    def _v1_dir(self, controller: str, name: str) -> Path | None:
        mount = self.hierarchy.controllers.get(controller)
        return mount / _relative(name) if mount is not None else None

    def read(self, cgroup: Cgroup) -> CgroupStats:
        """Everything known about ``cgroup`` now; what cannot be read is ``None`` and unknown."""
        files = _Files(self._absence, cgroup)
        stats = _read_v2(files, cgroup) if cgroup.version == 2 else _read_v1(files, cgroup)
        psi: dict[Resource, PsiSample] = {}
        if cgroup.pressure is not None:
            for resource in RESOURCES:
                path = cgroup.pressure / f"{resource}.pressure"
                sample = files.parse((), path, functools.partial(parse_psi, source=path))
                if sample is not None:
                    psi[resource] = sample
        return dataclasses.replace(stats, psi=psi, unknown=frozenset(files.unknown))


def _relative(name: str) -> str:
    return name.strip("/")


def _dirs(cgroup: Cgroup) -> tuple[Path | None, ...]:
    return (cgroup.memory, cgroup.cpu, cgroup.pressure)


class _Files:
    """Reads one cgroup's files, noting what is unknown and warning once about each problem."""

    def __init__(self, absence: AbsenceLog, cgroup: Cgroup) -> None:
        self._absence = absence
        self._cgroup = cgroup
        self.unknown: set[str] = set()

    def parse(
        self, fields: tuple[str, ...], path: Path | None, parse: Callable[[str], T]
    ) -> T | None:
        """``parse`` of the file's text; ``None`` with ``fields`` unknown when the file is
        absent, unreadable or malformed (each logged once, malformed reads counted)."""
        if path is None:
            self.unknown.update(fields)
            return None
        # Absence is said once per scope and file name (a host without memory.events lacks it
        # in every container); malformed content once per file, which may be one container's.
        key = (self._cgroup.scope, path.name)
        what = f"cgroup file {path.name}"
        try:
            text = path.read_text()
        except OSError as e:
            self.unknown.update(fields)
            # The v2 root lacks memory.max and friends by design, and a container's directory
            # vanishes when it exits: neither is worth a warning.
            if self._cgroup.is_root or not path.parent.is_dir():
                logger.debug("cgroup file unreadable", extra={"path": str(path)})
            else:
                self._absence.missing(key, path, what=what, error=e)
            return None
        except ValueError as e:  # UnicodeDecodeError: bytes that are not text at all
            self.unknown.update(fields)
            self._absence.malformed(path, path, what=what, problem=f"not text: {e}")
            return None
        try:
            value = parse(text)
        except ValueError as e:
            self.unknown.update(fields)
            self._absence.malformed(path, path, what=what, problem=str(e))
            return None
        self._absence.present(key, path, what=what)
        self._absence.present(path, path, what=what)
        return value

    def integer(self, field: str, path: Path | None) -> int | None:
        return self.parse((field,), path, lambda text: _int(text.strip(), path))

    def keyed(self, fields: tuple[str, ...], path: Path | None) -> dict[str, int] | None:
        return self.parse(fields, path, lambda text: _keyed(text, path))

    def pick(self, field: str, values: Mapping[str, int] | None, key: str) -> int | None:
        if values is None or key not in values:
            self.unknown.add(field)
            return None
        return values[key]


def _keyed(text: str, path: Path | None) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key:
            values[key] = _int(value.strip(), path)
    return values


def _int(text: str, path: Path | None) -> int:
    try:
        return int(text)
    except ValueError as e:
        raise ValueError(f"{path}: expected an integer, got {text[:40]!r}") from e


def _parse_proc_cgroup(text: str, source: Path) -> tuple[dict[str, str], str | None]:
    """``/proc/<pid>/cgroup``: v1 controller -> path, and the v2 path (the ``0::`` line)."""
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            raise ValueError(f"{source}: {line[:80]!r} is not hierarchy:controllers:path")
        _, names, path = parts
        if names == "":
            v2 = path
        for name in names.split(","):
            v1.setdefault(name, path)
    return v1, v2


def _read_v2(files: _Files, cgroup: Cgroup) -> CgroupStats:
    memory, cpu = cgroup.memory, cgroup.cpu
    current = files.integer("memory_current_bytes", _in(memory, "memory.current"))
    limit_path = _in(memory, "memory.max")
    limit = files.parse(("memory_limit_bytes",), limit_path, lambda t: _v2_max(t, limit_path))
    events = files.keyed(("oom_events", "oom_kill_events"), _in(memory, "memory.events"))
    stat = files.keyed(("memory_working_set_bytes",), _in(memory, "memory.stat"))
    quota_path = _in(cpu, "cpu.max")
    quota = files.parse(("cpu_quota_cores",), quota_path, lambda t: _v2_quota(t, quota_path))
    cpu_stat = files.keyed(("throttled_periods", "throttled_seconds"), _in(cpu, "cpu.stat"))
    throttled_us = files.pick("throttled_seconds", cpu_stat, "throttled_usec")
    return CgroupStats(
        memory_current_bytes=current,
        memory_limit_bytes=limit,
        memory_working_set_bytes=_working_set(files, current, stat, "inactive_file"),
        oom_events=files.pick("oom_events", events, "oom"),
        oom_kill_events=files.pick("oom_kill_events", events, "oom_kill"),
        cpu_quota_cores=quota,
        throttled_periods=files.pick("throttled_periods", cpu_stat, "nr_throttled"),
        throttled_seconds=throttled_us / 1e6 if throttled_us is not None else None,
        psi={},
    )


def _read_v1(files: _Files, cgroup: Cgroup) -> CgroupStats:
    memory, cpu = cgroup.memory, cgroup.cpu
    current = files.integer("memory_current_bytes", _in(memory, "memory.usage_in_bytes"))
    limit = files.integer("memory_limit_bytes", _in(memory, "memory.limit_in_bytes"))
    if limit is not None and limit >= V1_UNLIMITED_FROM:
        limit = None
    oom = files.keyed(("oom_kill_events",), _in(memory, "memory.oom_control"))
    stat = files.keyed(("memory_working_set_bytes",), _in(memory, "memory.stat"))
    quota_us = files.integer("cpu_quota_cores", _in(cpu, "cpu.cfs_quota_us"))
    period_us = files.integer("cpu_quota_cores", _in(cpu, "cpu.cfs_period_us"))
    quota: float | None = None
    if quota_us is not None and period_us and quota_us > 0:
        quota = quota_us / period_us
    cpu_stat = files.keyed(("throttled_periods", "throttled_seconds"), _in(cpu, "cpu.stat"))
    throttled_ns = files.pick("throttled_seconds", cpu_stat, "throttled_time")
    # cgroup v1 counts OOM kills (oom_control: oom_kill, kernel >= 4.13) but not limit hits.
    files.unknown.add("oom_events")
    inactive = "total_inactive_file" if stat and "total_inactive_file" in stat else "inactive_file"
    return CgroupStats(
        memory_current_bytes=current,
        memory_limit_bytes=limit,
        memory_working_set_bytes=_working_set(files, current, stat, inactive),
        oom_events=None,
        oom_kill_events=files.pick("oom_kill_events", oom, "oom_kill"),
        cpu_quota_cores=quota,
        throttled_periods=files.pick("throttled_periods", cpu_stat, "nr_throttled"),
        throttled_seconds=throttled_ns / 1e9 if throttled_ns is not None else None,
        psi={},
    )


def _in(directory: Path | None, name: str) -> Path | None:
    return directory / name if directory is not None else None


def _v2_max(text: str, path: Path | None) -> int | None:
    """``memory.max``: bytes, or ``max`` (``None``: unlimited)."""
    value = text.strip()
    return None if value == "max" else _int(value, path)


def _v2_quota(text: str, path: Path | None) -> float | None:
    """``cpu.max``: ``$MAX $PERIOD`` in microseconds, ``max`` for no quota (``None``)."""
    quota, _, period = text.strip().partition(" ")
    if quota == "max":
        return None
    period_us = _int(period, path) if period else 100_000
    if period_us <= 0:
        raise ValueError(f"{path}: period {period_us} is not positive")
    return _int(quota, path) / period_us


def _working_set(
    files: _Files, current: int | None, stat: Mapping[str, int] | None, inactive_key: str
) -> int | None:
    inactive = files.pick("memory_working_set_bytes", stat, inactive_key)
    if current is None or inactive is None:
        files.unknown.add("memory_working_set_bytes")
        return None
    return max(0, current - inactive)
