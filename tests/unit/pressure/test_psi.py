"""PSI files read as ratios and seconds; a kernel without PSI, or a malformed file, is reported
once, not in a loop, and never raises."""

import logging
from pathlib import Path

import pytest

from nodekeeper.pressure.psi import PsiLine, PsiReader, parse_psi
from nodekeeper.pressure.thresholds import PSI_UNAVAILABLE, PressureTracker
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
def test_parse_names_the_file_and_what_is_wrong(content: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint) as caught:
        parse_psi(content, source="/proc/pressure/memory")
    assert "/proc/pressure/memory" in str(caught.value)


class TestMalformedFiles:
    """Bad input is unknown, said once and counted: it never stops the sampler."""

    def test_garbage_truncated_and_non_numbers_read_as_unknown(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        reader = PsiReader(FIXTURES / "proc-malformed" / "pressure")

        with caplog.at_level(logging.INFO, logger="nodekeeper.pressure"):
            first = reader.read_all()
            second = reader.read_all()

        assert first == second == {"cpu": None, "memory": None, "io": None}
        warnings = {r.__dict__["what"]: r for r in caplog.records if r.levelno >= logging.WARNING}
        assert len(warnings) == 3 == len(caplog.records)  # once per file, not per read
        assert warnings["PSI for cpu"].__dict__["reason"].startswith("line 1 starts with 'Lorem'")
        assert warnings["PSI for memory"].__dict__["reason"] == "line 2: 'avg6' is not key=value"
        assert "could not convert string to float: 'abc'" in warnings["PSI for io"].getMessage()
        assert warnings["PSI for io"].__dict__["path"].endswith("proc-malformed/pressure/io")
        assert reader.malformed == {"psi": 6}  # every read counted

    def test_bytes_that_are_not_text_read_as_unknown(self, tmp_path: Path) -> None:
        (tmp_path / "cpu").write_bytes(b"\xff\xfe\x00some avg10=")

        reader = PsiReader(tmp_path)

        assert reader.read("cpu") is None
        assert reader.malformed == {"psi": 1}

    def test_a_file_that_is_mended_is_read_again_and_said_once(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        (tmp_path / "io").write_text("some avg10=1.00 avg6")
        reader = PsiReader(tmp_path)
        with caplog.at_level(logging.INFO, logger="nodekeeper.pressure"):
            assert reader.read("io") is None
            (tmp_path / "io").write_text("some avg10=1.00 avg60=0.00 avg300=0.00 total=5\n")
            assert reader.read("io") is not None
            assert reader.read("io") is not None

        assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
        assert "PSI for io malformed" in caplog.records[0].getMessage()
        assert reader.malformed == {"psi": 1}

    def test_the_conditions_say_unknown_instead_of_the_tracker_raising(self) -> None:
        tracker = PressureTracker()

        tracker.evaluate(PsiReader(FIXTURES / "proc-malformed" / "pressure"), now=0)

        assert {s.status for s in tracker.states()} == {"Unknown"}
        assert {s.reason for s in tracker.states()} == {PSI_UNAVAILABLE}


def test_parse_accepts_extra_fields_from_newer_kernels() -> None:
    sample = parse_psi(
        "some avg10=1.00 avg60=2.00 avg300=3.00 total=4 future=9\n", source="/proc/pressure/io"
    )
    assert sample.some == PsiLine(0.01, 0.02, 0.03, 4e-6)
