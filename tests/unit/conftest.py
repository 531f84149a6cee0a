"""Hypothesis profiles for the property tests (the ``test_*_properties.py`` files).

``ci``, the default, is what ``make unit`` and ``make test`` run: derandomized (the same examples
on every run and machine, so a red suite is reproducible and a green one stays green), a modest
number of examples, no deadline (two noisy cores make per-example timings meaningless) and no
example database; hypothesis's own cache goes to the temporary directory, not the checkout.

``fuzz`` (``HYPOTHESIS_PROFILE=fuzz``, which ``make fuzz`` sets) draws fresh random examples,
many more of them, and prints the blob that reproduces a failure with ``@reproduce_failure``.

A test whose examples are expensive asks for a share of the profile's count
(``settings.default.max_examples // N``), so both profiles keep the same proportions.
"""

import os
import tempfile
from pathlib import Path

from hypothesis import settings

# Hypothesis keeps a cache (constants found in the source) in its storage directory, by default
# .hypothesis/ in the working directory: outside the checkout instead.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "nodekeeper-hypothesis")
)

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=100,
    deadline=None,
    database=None,
    print_blob=False,
)
settings.register_profile(
    "fuzz",
    max_examples=10_000,
    deadline=None,
    database=None,
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
