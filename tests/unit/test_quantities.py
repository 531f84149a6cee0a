"""Quantities are read the way Kubernetes reads them, and bad ones are refused with a hint."""

import pytest
from pydantic import BaseModel, ValidationError

from nodekeeper.api.quantities import Quantity, memory_bytes, nano_cpus


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512Mi", 512 * 2**20), ("1Gi", 2**30), ("1G", 10**9), ("100", 100), (64, 64), ("1e3", 1000)],
)
def test_memory_quantities_in_bytes(text: str | int, expected: int) -> None:
    assert memory_bytes(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("500m", 500_000_000), ("2", 2_000_000_000), ("0.25", 250_000_000)]
)
def test_cpu_quantities_in_nano_cpus(text: str, expected: int) -> None:
    assert nano_cpus(text) == expected


class Limits(BaseModel):
    memory: Quantity


def test_a_malformed_quantity_is_refused_with_an_example() -> None:
    with pytest.raises(ValidationError, match=r"write e\.g\. 512Mi"):
        Limits(memory="lots")


def test_an_integer_quantity_is_kept() -> None:
    assert Limits(memory=1024).memory == "1024"
