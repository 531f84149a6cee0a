"""Kubernetes resource quantities (``512Mi``, ``0.5``, ``250m``) as the CRDs accept them.

In the schema a quantity is ``x-kubernetes-int-or-string`` with Kubernetes' own pattern, so
``memory: 512Mi`` and ``cpu: 2`` are accepted and ``memory: lots`` is refused by the API server.
"""

import decimal
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

# resource.Quantity's grammar, as apiextensions-apiserver's own quantity schemas write it.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY = re.compile(QUANTITY_PATTERN)

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": decimal.Decimal("1e-9"),
    "u": decimal.Decimal("1e-6"),
    "m": decimal.Decimal("1e-3"),
    "": decimal.Decimal(1),
    "k": decimal.Decimal("1e3"),
    "M": decimal.Decimal("1e6"),
    "G": decimal.Decimal("1e9"),
    "T": decimal.Decimal("1e12"),
    "P": decimal.Decimal("1e15"),
    "E": decimal.Decimal("1e18"),
}


class QuantityError(ValueError):
    pass


def _as_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise QuantityError(f"expected a quantity such as 512Mi or 0.5, got {value!r}")
    text = str(value)
    if not _QUANTITY.match(text):
        raise QuantityError(f"{text!r} is not a quantity; write e.g. 512Mi, 1Gi, 500m or 2")
    return text


_PARTS = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")


def parse_quantity(value: str | int) -> decimal.Decimal:
    """The quantity's value in base units (bytes for memory, cores for CPU)."""
    text = _as_text(value)
    parts = _PARTS.match(text)
    assert parts is not None  # the pattern check above guarantees a number first
    number, suffix = decimal.Decimal(parts[1]), parts[2]
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * decimal.Decimal(10) ** int(decimal.Decimal(suffix[1:]))


def memory_bytes(value: str | int) -> int:
    return int(parse_quantity(value).to_integral_value(rounding=decimal.ROUND_CEILING))


def nano_cpus(value: str | int) -> int:
    return int((parse_quantity(value) * 10**9).to_integral_value(rounding=decimal.ROUND_CEILING))


Quantity = Annotated[
    str | int,
    BeforeValidator(_as_text),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
        }
    ),
]
