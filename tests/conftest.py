"""Hooks for every test layer under tests/."""

# A skip fails the run in CI (tests/support/skips.py); e2e/tests/conftest.py loads the same.
from tests.support.skips import pytest_make_collect_report, pytest_runtest_makereport

__all__ = ["pytest_make_collect_report", "pytest_runtest_makereport"]
