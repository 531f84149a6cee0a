"""Properties of the PSI and cgroup readers on random file content: a figure or "unknown".

The module docstrings promise that bad input never stops the sampler: a file whose content cannot
be parsed makes its figures unknown, is counted as a malformed read, and raises nothing. Files
written as the kernel writes them give back exactly their figures.
"""

import dataclasses
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodekeeper.pressure.cgroups import CgroupReader, CgroupStats
from nodekeeper.pressure.psi import RESOURCES, PsiLine, PsiReader, PsiSample, parse_psi

CONTAINER = "0123456789abcdef" * 4

# What the kernel writes: percentages with two decimals, microseconds.
percents = st.integers(0, 10_000).map(lambda n: n / 100)
totals = st.integers(0, 2**64 - 1)


@st.composite
def psi_text(draw: st.DrawFn) -> tuple[str, PsiSample]:
    """A pressure file as the kernel writes it (``full`` absent on old kernels for cpu)."""
    figures = {}
    text = ""
    for kind in ("some", "full") if draw(st.booleans()) else ("some",):
        averages = [draw(percents) for _ in range(3)]
        total = draw(totals)
        text += f"{kind} avg10={averages[0]:.2f} avg60={averages[1]:.2f} "
        text += f"avg300={averages[2]:.2f} total={total}\n"
        figures[kind] = PsiLine(*(round(a / 100, 6) for a in averages), total / 1e6)
    return text, PsiSample(some=figures["some"], full=figures.get("full"))


# Content that is nearly a pressure file, or nothing like one. Numbers stay below 10**300:
# longer ones overflow (test_a_huge_total_is_malformed_not_an_exception).
number_words = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["", "-", "nan", "inf", "1e5", "0x10", "\uff11\uff12", "1_000", "\u0663", "12abc"]
    ),
)
psi_tokens = st.one_of(
    st.sampled_from(["some", "full", "avg10=", "avg60=", "avg300=", "total=", "\n", " ", "\t"]),
    st.builds(
        lambda key, value: f"{key}={value}",
        st.sampled_from(["avg10", "avg60", "avg300", "total", "avg", ""]),
        number_words,
    ),
    st.text(max_size=8),
)
# A pressure file's shape with any word for each figure.
near_psi = st.lists(
    st.builds(
        lambda kind, values: (
            f"{kind} "
            + " ".join(
                f"{k}={v}"
                for k, v in zip(("avg10", "avg60", "avg300", "total"), values, strict=True)
            )
        ),
        st.sampled_from(["some", "full"]),
        st.lists(number_words | percents.map(str) | totals.map(str), min_size=4, max_size=4),
    ),
    min_size=1,
    max_size=3,
).map(lambda lines: "\n".join(lines).encode())
psi_garbage = st.one_of(
    near_psi,
    st.binary(max_size=300),
    st.lists(psi_tokens, max_size=30).map(lambda tokens: " ".join(tokens).encode()),
    psi_text().map(lambda pair: pair[0].encode()),
    st.builds(
        lambda valid, cut, extra: valid[0].encode()[:cut] + extra,
        psi_text(),
        st.integers(0, 200),
        st.binary(max_size=20),
    ),
)


@given(pair=psi_text())
def test_a_pressure_file_as_the_kernel_writes_it_gives_its_figures(
    pair: tuple[str, PsiSample],
) -> None:
    text, figures = pair
    assert parse_psi(text, source="cpu") == figures


@given(content=psi_garbage)
def test_any_pressure_file_gives_a_sample_or_unknown_and_counts_what_it_cannot_parse(
    content: bytes,
) -> None:
    with tempfile.TemporaryDirectory() as root:  # not tmp_path: one directory per example
        (Path(root) / "cpu").write_bytes(content)
        reader = PsiReader(Path(root))

        sample = reader.read("cpu")

        assert reader.malformed == {"psi": 0 if sample is not None else 1}
        if sample is not None:
            for line in (sample.some, sample.full):
                if line is not None:
                    assert all(0 <= ratio <= 1 for ratio in (line.avg10, line.avg60, line.avg300))
                    assert line.total_seconds >= 0
        assert reader.read("memory") is None  # absent: unknown, not malformed
        assert reader.malformed == {"psi": 0 if sample is not None else 1}


@pytest.mark.xfail(
    strict=True,
    raises=OverflowError,
    reason="bug: a total of more than 308 digits raises OverflowError (not ValueError) out of "
    "parse_psi, through PsiReader.read: the sampler stops instead of reporting unknown",
)
@given(digits=st.integers(309, 4000))
def test_a_huge_total_is_malformed_not_an_exception(digits: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        text = f"some avg10=0.00 avg60=0.00 avg300=0.00 total={'9' * digits}\n"
        (Path(root) / "io").write_text(text)
        reader = PsiReader(Path(root))
        assert reader.read("io") is None
        assert reader.malformed == {"psi": 1}


# --- cgroups ---


@dataclasses.dataclass(frozen=True)
class CgroupFile:
    """One file of a cgroup directory: what it holds and, when written as the kernel writes
    it, the figures it must give (None: garbage, the figures may be anything or unknown)."""

    name: str
    content: bytes
    figures: dict[str, object] | None


def _valid_v2(draw: st.DrawFn, name: str) -> CgroupFile:
    n = st.integers(0, 2**63 - 1)
    if name == "memory.current":
        value = draw(n)
        return CgroupFile(name, f"{value}\n".encode(), {"memory_current_bytes": value})
    if name == "memory.max":
        value = draw(st.none() | n)
        text = "max" if value is None else str(value)
        return CgroupFile(name, f"{text}\n".encode(), {"memory_limit_bytes": value})
    if name == "memory.events":
        oom, kills = draw(n), draw(n)
        text = f"low 0\nhigh 3\nmax 7\noom {oom}\noom_kill {kills}\noom_group_kill 0\n"
        return CgroupFile(name, text.encode(), {"oom_events": oom, "oom_kill_events": kills})
    if name == "memory.stat":
        inactive = draw(n)
        text = f"anon 4096\nfile 8192\ninactive_anon 0\ninactive_file {inactive}\n"
        return CgroupFile(name, text.encode(), {"inactive_file": inactive})
    if name == "cpu.max":
        quota, period = draw(st.none() | st.integers(1, 10**12)), draw(st.integers(1, 10**7))
        text = f"max {period}" if quota is None else f"{quota} {period}"
        cores = None if quota is None else quota / period
        return CgroupFile(name, f"{text}\n".encode(), {"cpu_quota_cores": cores})
    if name == "cpu.stat":
        periods, usec = draw(n), draw(n)
        text = f"usage_usec 1\nuser_usec 1\nnr_periods 9\nnr_throttled {periods}\n"
        text += f"throttled_usec {usec}\n"
        return CgroupFile(
            name, text.encode(), {"throttled_periods": periods, "throttled_seconds": usec / 1e6}
        )
    text, sample = draw(psi_text())
    return CgroupFile(name, text.encode(), {"psi": sample})


V2_FILES = (
    "memory.current",
    "memory.max",
    "memory.events",
    "memory.stat",
    "cpu.max",
    "cpu.stat",
    *(f"{resource}.pressure" for resource in RESOURCES),
)
cgroup_garbage = st.one_of(
    st.binary(max_size=200),
    st.lists(
        st.one_of(number_words, st.sampled_from(["max", "oom", "oom_kill", "nr_throttled"])),
        max_size=6,
    ).map(lambda words: " ".join(words).encode()),
    st.builds(lambda words: "\n".join(words).encode(), st.lists(st.text(max_size=12), max_size=5)),
    psi_garbage,
)


@st.composite
def v2_directories(draw: st.DrawFn) -> list[CgroupFile]:
    files = []
    for name in V2_FILES:
        kind = draw(st.sampled_from(["valid", "garbage", "absent"]))
        if kind == "valid":
            files.append(_valid_v2(draw, name))
        elif kind == "garbage":
            files.append(CgroupFile(name, draw(cgroup_garbage), None))
    return files


NUMBER_FIELDS = [
    field.name for field in dataclasses.fields(CgroupStats) if field.name not in ("psi", "unknown")
]
UNLIMITED = {"memory_limit_bytes", "cpu_quota_cores"}  # None there may mean "no limit"


@given(files=v2_directories())
def test_any_cgroup_file_gives_its_figures_or_unknown_and_nothing_raises(
    files: list[CgroupFile],
) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        (root / "cgroup.controllers").write_text("cpu memory io\n")
        directory = root / "docker" / CONTAINER
        directory.mkdir(parents=True)
        for file in files:
            (directory / file.name).write_bytes(file.content)
        reader = CgroupReader(root=root, proc=root / "proc")
        cgroup = reader.container(CONTAINER)
        assert cgroup is not None

        stats = reader.read(cgroup)

    # A figure, or unknown (None for a limit may also say "unlimited").
    for name in NUMBER_FIELDS:
        value = getattr(stats, name)
        assert value is not None or name in stats.unknown or name in UNLIMITED, name
        if value is not None:
            assert name not in stats.unknown
            assert isinstance(value, int | float)
    present = {file.name for file in files}
    assert set(stats.psi) <= {
        resource for resource in RESOURCES if f"{resource}.pressure" in present
    }
    # Files written as the kernel writes them give exactly their figures.
    valid = {file.name: file.figures for file in files if file.figures is not None}
    for name, figures in valid.items():
        for field, value in figures.items():
            if field == "psi":
                assert stats.psi[name.removesuffix(".pressure")] == value  # type: ignore[index]
            elif field == "inactive_file":
                current = valid.get("memory.current")
                if current is not None:
                    used = current["memory_current_bytes"]
                    assert isinstance(used, int)
                    assert isinstance(value, int)
                    assert stats.memory_working_set_bytes == max(0, used - value)
            else:
                assert getattr(stats, field) == value, field
                assert field not in stats.unknown
    garbage = sum(file.figures is None for file in files)
    assert reader.malformed["cgroup"] <= garbage
    if not garbage:
        assert reader.malformed == {"cgroup": 0}


@pytest.mark.xfail(
    strict=True,
    raises=OverflowError,
    reason="bug: a quota or throttled time too large for a float raises OverflowError out of "
    "CgroupReader.read (only ValueError is caught): figures unknown was promised",
)
@pytest.mark.parametrize("name", ["cpu.max", "cpu.stat"])
@given(digits=st.integers(309, 4000))
def test_a_huge_number_is_malformed_not_an_exception(digits: int, name: str) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        (root / "cgroup.controllers").write_text("cpu memory io\n")
        huge = "9" * digits
        text = (
            f"{huge} 100000\n" if name == "cpu.max" else f"nr_throttled 1\nthrottled_usec {huge}\n"
        )
        (root / name).write_text(text)
        reader = CgroupReader(root=root, proc=root / "proc")
        stats = reader.read(reader.node())
        assert "cpu_quota_cores" in stats.unknown or "throttled_seconds" in stats.unknown
