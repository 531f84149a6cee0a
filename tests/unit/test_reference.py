"""docs/reference.md lists exactly the settings, metrics, reasons and codes the code has."""

import re
from pathlib import Path

from nodekeeper.api import codes
from nodekeeper.backups.metrics import BackupMetrics
from nodekeeper.backups.outcomes import REASONS as BACKUP_REASONS
from nodekeeper.config import Settings
from nodekeeper.logs.metrics import LogMetrics, LogStateCollector, WorkloadLogCollector
from nodekeeper.metrics import Metrics
from nodekeeper.pressure.metrics import PressureCollector, WorkloadUsageCollector
from nodekeeper.pressure.psi import PsiLine, PsiSample
from nodekeeper.pressure.selfprotect import MemoryLevel, SelfMemory
from nodekeeper.pressure.thresholds import REASONS as PRESSURE_REASONS
from nodekeeper.pressure.thresholds import PressureTracker
from nodekeeper.runtime import errors

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"


def first_column(section: str) -> set[str]:
    """The backticked names in the first column of the table under ``## section``."""
    text = REFERENCE.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", body, flags=re.MULTILINE))


def test_every_setting_is_documented() -> None:
    assert first_column("Settings") == set(Settings.model_fields)


def test_every_metric_is_documented() -> None:
    metrics = Metrics()
    # As app.run registers it; the sources only need to yield one of everything.
    line = PsiLine(avg10=0.1, avg60=0.1, avg300=0.1, total_seconds=1.0)
    metrics.registry.register(
        PressureCollector(
            psi=lambda: {"cpu": PsiSample(some=line, full=line)},
            conditions=lambda: PressureTracker().states(),
            self_memory=lambda: SelfMemory(
                used_bytes=1, limit_bytes=2, limit_source="setting", level=MemoryLevel.NORMAL
            ),
        )
    )
    BackupMetrics(metrics.registry)  # as app.run builds it, into the same registry
    LogMetrics(metrics.registry)
    metrics.registry.register(LogStateCollector(dict))
    metrics.registry.register(WorkloadLogCollector(dict))
    metrics.registry.register(WorkloadUsageCollector(tuple))
    names = set()
    for family in metrics.registry.collect():
        # Info metrics are exposed with an _info suffix; counters with _total.
        suffix = {"info": "_info", "counter": "_total"}.get(family.type, "")
        names.add(family.name + suffix)
    assert first_column("Metrics") == names


def test_every_condition_reason_is_documented() -> None:
    assert first_column("Condition reasons") == set(codes.REASONS)


def test_every_error_code_is_documented() -> None:
    assert first_column("Error codes") == set(codes.ERROR_CODES)


def test_every_docker_error_has_a_documented_code() -> None:
    classes = [errors.DockerError, *errors.DockerError.__subclasses__()]
    assert {cls.code for cls in classes} <= set(codes.ERROR_CODES)


def test_every_pressure_reason_is_a_documented_code() -> None:
    from nodekeeper.pressure.admission import CODES

    assert set(PRESSURE_REASONS) <= set(codes.REASONS)
    assert set(CODES) <= set(codes.ERROR_CODES)


def test_every_backup_outcome_is_a_documented_reason() -> None:
    assert set(BACKUP_REASONS) <= set(codes.REASONS)
