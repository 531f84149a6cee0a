"""The chart ships the same CRDs as crds/ (which `make crds` regenerates, copy included)."""

from tests.chart.conftest import CHART, ROOT


def test_chart_crds_equal_top_level_crds() -> None:
    top = {path.name: path.read_text() for path in (ROOT / "crds").glob("*.yaml")}
    chart = {path.name: path.read_text() for path in (CHART / "crds").glob("*.yaml")}
    assert top, "crds/ is empty"
    assert chart == top, "charts/nodekeeper/crds/ differs from crds/: run `make crds`"
