"""In CI a skipped test is a failed one: a skip there means a layer was silently not tested.

Loaded by ``tests/conftest.py`` and ``e2e/tests/conftest.py`` (which re-export these hooks); it
acts only when ``CI`` is set to something other than ``""``, ``0`` or ``false`` (``.ci/run``
sets ``CI=true``). On a developer's machine a skip stays a skip, with its reason.

A skip raised in a test, its setup (a fixture) or at collection (a module-level skip) fails
the run with the skip's reason. An expected failure (``xfail``) is not a skip and is left alone.
There are no legitimate skips in the suite: a test that cannot run on a machine fails, saying
what the machine lacks, so CI cannot pass without testing.
"""

import os
from collections.abc import Generator
from typing import Any

import pytest

ENV = "CI"


def in_ci() -> bool:
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no")


def _reason(longrepr: Any) -> str:
    # A skip's longrepr is (path, lineno, "Skipped: reason").
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, lineno, message = longrepr
        return f"{message} ({path}:{lineno})"
    return str(longrepr)


def _fail(report: pytest.TestReport | pytest.CollectReport) -> None:
    report.outcome = "failed"
    report.longrepr = (
        f"skipped, and a skip fails the run when {ENV} is set: {_reason(report.longrepr)}"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        _fail(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None]:
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()
    if in_ci() and report.skipped:
        _fail(report)
