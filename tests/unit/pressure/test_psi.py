"""PSI files read as ratios and seconds; a kernel without PSI is reported once, not in a loop."""

import logging
from pathlib import Path

import pytest

from nodekeeper.pressure.psi import PsiLine, PsiReader, parse_psi
from tests.unit.pressure.conftest import FIXTURES


def test_a_node_pressure_file_reads_as_ratios_and_seconds() -> None:
    sample = PsiReader(FIXTURES / "proc" / "pressure").read("cpu")

    assert sample is not None
    assert sample.some == PsiLine(avg10=0.42, avg60=0.125, avg300=0.0325, total_seconds=2.713518)
    assert sample.full == PsiLine(avg10=0.0, avg60=0.0, avg300=0.0, total_seconds=0.0)


def test_every_resource_is_read() -> None:
    samples = PsiReader(FIXTURES / "proc" / "pressure").read_all()

    assert set(samples) == {"cpu", "memory", "io"}
    memory = samples["memory"]
    assert memory is not None
    assert memory.full is not None
    assert (memory.some.avg10, memory.full.total_seconds) == (0.0013, 1.5)


def test_cpu_without_a_full_line_has_no_full_figures() -> None:
    sample = PsiReader(FIXTURES / "proc-old-kernel" / "pressure").read("cpu")

    assert sample is not None
    assert sample.full is None
    assert sample.some.avg10 == 0.0013


def test_a_kernel_without_psi_gives_none_and_warns_once_per_resource(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = PsiReader(FIXTURES / "proc-without-psi" / "pressure")

    with caplog.at_level(logging.INFO, logger="nodekeeper.pressure"):
        results = [reader.read("cpu") for _ in range(5)] + [reader.read("memory")]

    assert results == [None] * 6
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(":")[0] for r in warnings] == [
        "PSI for cpu unavailable",
        "PSI for memory unavailable",
    ]
    assert warnings[0].__dict__["path"].endswith("proc-without-psi/pressure/cpu")
    assert warnings[0].name == "nodekeeper.pressure.psi"


def test_psi_that_comes_back_is_logged_once_as_available(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reader = PsiReader(tmp_path)
    with caplog.at_level(logging.INFO, logger="nodekeeper.pressure"):
        assert reader.read("io") is None
        (tmp_path / "io").write_text("some avg10=1.00 avg60=0.00 avg300=0.00 total=5\n")
        assert reader.read("io") is not None
        assert reader.read("io") is not None

    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    assert "available again" in caplog.records[1].getMessage()


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("", "no 'some' line"),
        ("some avg10=0.13 avg60=0.06 total=5\n", "lacks avg300="),
        ("some avg10=x avg60=0.06 avg300=0.1 total=5\n", "could not convert"),
        ("some avg10=0.1 avg60=0.06 avg300=0.1 total=5\nsome avg10=0.1\n", "repeats 'some'"),
        ("weird avg10=0.1\n", "starts with 'weird'"),
        ("some avg10=150.00 avg60=0.06 avg300=0.1 total=5\n", "out of range"),
        ("some avg10 0.1\n", "is not key=value"),
    ],
)
def test_malformed_content_names_the_file(tmp_path: Path, content: str, complaint: str) -> None:
    (tmp_path / "memory").write_text(content)

    with pytest.raises(ValueError, match=complaint) as caught:
        PsiReader(tmp_path).read("memory")
    assert str(tmp_path / "memory") in str(caught.value)


def test_parse_accepts_extra_fields_from_newer_kernels() -> None:
    sample = parse_psi(
        "some avg10=1.00 avg60=2.00 avg300=3.00 total=4 future=9\n", source="/proc/pressure/io"
    )
    assert sample.some == PsiLine(0.01, 0.02, 0.03, 4e-6)
