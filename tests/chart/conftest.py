"""The chart, rendered and linted by the real helm 4 binary (e2e/build.sh caches it)."""

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "nodekeeper"
VALUES = Path(__file__).parent / "values"
CACHE = Path(os.environ.get("NODEKEEPER_CACHE", Path.home() / ".cache" / "nodekeeper"))
MONITORING_API = "monitoring.coreos.com/v1"

Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def helm() -> str:
    """helm 4 from the cache; e2e/build.sh fetches it once and answers 'cached' after that."""
    result = subprocess.run(
        [str(ROOT / "e2e" / "build.sh")], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"e2e/build.sh failed: {result.stderr.strip() or result.stdout.strip()}")
    return str(CACHE / "bin" / "helm")


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def render(helm: str) -> Render:
    """``helm template`` with values files from tests/chart/values and extra flags."""

    def render(*files: str, flags: tuple[str, ...] = (), api_versions: tuple[str, ...] = ()):
        args = ["template", "nodekeeper", str(CHART), "--namespace", "nodekeeper"]
        for name in files:
            args += ["--values", str(VALUES / name)]
        for version in api_versions:
            args += ["--api-versions", version]
        result = run_helm(helm, *args, *flags)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    return render


def find(documents: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for doc in documents
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def kinds(documents: list[dict[str, Any]]) -> list[str]:
    return sorted(doc["kind"] for doc in documents)
