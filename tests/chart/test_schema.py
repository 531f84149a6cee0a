"""values.schema.json: current with the agent's settings, and helm refuses what it rejects."""

import subprocess
import sys

import pytest

from tests.chart.conftest import CHART, ROOT, run_helm


def test_schema_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chart-schema.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (("--set", "wrkloads.enabled=false"), "additional properties 'wrkloads' not allowed"),
        (("--set", "settings.log_levle=debug"), "additional properties 'log_levle' not allowed"),
        # A setting the chart owns is refused too: the chart would set it twice.
        (("--set", "settings.node_name=x"), "additional properties 'node_name' not allowed"),
        (("--set", "workloads.enabled=maybe"), "got string, want boolean"),
        (("--set", "settings.log_level=loud"), "log_level"),
        (("--set-string", "settings.gc_interval_seconds=soon"), "gc_interval_seconds"),
        (("--set", "settings.backup_log_cap_bytes=-1"), "backup_log_cap_bytes"),
        (("--set", "httpPort=http"), "got string, want integer"),
        (("--set", "apiAuth=basic"), "apiAuth"),
    ],
)
def test_schema_rejects_with_helms_error(helm: str, flags: tuple[str, ...], error: str) -> None:
    result = run_helm(helm, "template", "nodekeeper", str(CHART), *flags)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert error in result.stderr


def test_a_decimal_from_set_is_accepted(helm: str) -> None:
    """`--set` passes 0.2 as a string; the schema takes it, the agent parses it."""
    result = run_helm(
        helm, "template", "nodekeeper", str(CHART), "--set", "settings.pressure_enter_ratio=0.2"
    )
    assert result.returncode == 0, result.stderr
