"""`helm lint --strict` passes for every values file a user might start from."""

import pytest

from tests.chart.conftest import CHART, VALUES, run_helm


@pytest.mark.parametrize(
    "values",
    ["default.yaml", "workloads-disabled.yaml", "monitoring.yaml", "custom-settings.yaml"],
)
def test_lint_strict(helm: str, values: str) -> None:
    # helm lint has no --api-versions: the monitoring objects behind the API check are rendered
    # by test_rendering and accepted by a real API server in e2e/tests/test_chart.py.
    result = run_helm(helm, "lint", "--strict", str(CHART), "--values", str(VALUES / values))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
