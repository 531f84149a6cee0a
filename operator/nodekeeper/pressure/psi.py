"""Pressure Stall Information: how much time tasks lost waiting for CPU, memory or IO.

PSI is the kernel's own measure of contention (Documentation/accounting/psi.rst): ``some`` is
the share of wall time in which at least one task stalled, ``full`` the share in which all
non-idle tasks did. The same text format is served by ``/proc/pressure/{cpu,memory,io}`` for the
whole node and by ``<cgroup v2>/{cpu,memory,io}.pressure`` for one cgroup::

    some avg10=0.13 avg60=0.06 avg300=0.22 total=2713518
    full avg10=0.00 avg60=0.00 avg300=0.00 total=0

The file gives percentages and microseconds; :class:`PsiLine` holds ratios (0..1) and seconds,
so thresholds and metrics use base units. A kernel built without PSI, or booted with ``psi=0``,
has no such files: :class:`PsiReader` then answers ``None`` and says so once in the log. A file
it cannot parse is answered the same way (``None``, one warning naming the file and what was
wrong), and counted in :attr:`PsiReader.malformed`: bad input never stops the sampler.
"""

import dataclasses
import logging
from pathlib import Path
from typing import Literal, Protocol, get_args

from nodekeeper.pressure.absence import AbsenceLog

logger = logging.getLogger(__name__)

Resource = Literal["cpu", "memory", "io"]
RESOURCES: tuple[Resource, ...] = get_args(Resource)

_AVERAGES = ("avg10", "avg60", "avg300")


@dataclasses.dataclass(frozen=True)
class PsiLine:
    """One line of a pressure file: stall ratios over 10, 60 and 300 s, and the running total."""

    avg10: float
    avg60: float
    avg300: float
    total_seconds: float


@dataclasses.dataclass(frozen=True)
class PsiSample:
    some: PsiLine
    # Absent on kernels before 5.13 for cpu; at node level cpu ``full`` is always zero.
    full: PsiLine | None


class PsiSource(Protocol):
    """Anything that answers PSI per resource: the node's /proc/pressure, a fake in tests."""

    def read(self, resource: Resource) -> PsiSample | None: ...


def parse_psi(text: str, *, source: str | Path) -> PsiSample:
    """Parse the content of a pressure file; ``source`` names it in errors."""
    lines: dict[str, PsiLine] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        kind, _, rest = raw.strip().partition(" ")
        if kind not in ("some", "full"):
            raise ValueError(f"{source}: line {number} starts with {kind!r}, not some/full")
        if kind in lines:
            raise ValueError(f"{source}: line {number} repeats {kind!r}")
        lines[kind] = _parse_line(rest, source=source, number=number)
    if "some" not in lines:
        raise ValueError(f"{source}: no 'some' line in {text[:80]!r}")
    return PsiSample(some=lines["some"], full=lines.get("full"))


def _parse_line(rest: str, *, source: str | Path, number: int) -> PsiLine:
    fields: dict[str, str] = {}
    for item in rest.split():
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{source}: line {number}: {item!r} is not key=value")
        fields[key] = value
    try:
        # Rounded so 0.13 % reads 0.0013, not 0.0013000000000000002.
        averages = [round(float(fields[name]) / 100.0, 6) for name in _AVERAGES]
        total_us = int(fields["total"])
    except KeyError as e:
        raise ValueError(f"{source}: line {number} lacks {e.args[0]}=") from e
    except ValueError as e:
        raise ValueError(f"{source}: line {number}: {e}") from e
    if any(not 0.0 <= ratio <= 1.0 for ratio in averages) or total_us < 0:
        raise ValueError(f"{source}: line {number}: figures out of range in {rest!r}")
    return PsiLine(
        avg10=averages[0], avg60=averages[1], avg300=averages[2], total_seconds=total_us / 1e6
    )


def read_psi_file(path: Path, absence: AbsenceLog, *, what: str) -> PsiSample | None:
    """One pressure file, or ``None`` when it cannot be read or parsed (logged once per
    ``what``, each malformed read counted by ``absence``)."""
    try:
        text = path.read_text()
    except OSError as e:
        # ENOENT: no PSI in this kernel; EOPNOTSUPP: cgroup files of a kernel booted psi=0.
        absence.missing(what, path, what=what, error=e)
        return None
    except ValueError as e:  # UnicodeDecodeError: bytes that are not text at all
        absence.malformed(what, path, what=what, problem=f"not text: {e}")
        return None
    try:
        sample = parse_psi(text, source=path)
    except ValueError as e:
        absence.malformed(what, path, what=what, problem=str(e))
        return None
    absence.present(what, path, what=what)
    return sample


class PsiReader:
    """The node's PSI, from ``<root>/{cpu,memory,io}`` (``/proc/pressure`` on a real node)."""

    def __init__(self, root: Path = Path("/proc/pressure")) -> None:
        self.root = root
        self._absence = AbsenceLog(logger)

    def path(self, resource: Resource) -> Path:
        return self.root / resource

    @property
    def malformed(self) -> dict[str, int]:
        """Reads that found a file they could not parse, by source (``psi``): for a metric."""
        return {"psi": self._absence.malformed_reads}

    def read(self, resource: Resource) -> PsiSample | None:
        """The resource's PSI now; ``None`` on a kernel without PSI or a malformed file."""
        return read_psi_file(self.path(resource), self._absence, what=f"PSI for {resource}")

    def read_all(self) -> dict[Resource, PsiSample | None]:
        return {resource: self.read(resource) for resource in RESOURCES}
