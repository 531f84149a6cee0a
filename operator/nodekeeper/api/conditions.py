"""Conditions in the ``metav1.Condition`` shape, and the one helper that sets them.

``kubectl wait --for=condition=X`` and every Kubernetes UI read this shape, so both kinds use it.
``lastTransitionTime`` moves only when ``status`` changes: a new reason or message alone is not
a transition (the rule ``meta.SetStatusCondition`` follows in apimachinery).
"""

import datetime
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nodekeeper.api.times import rfc3339

ConditionStatus = Literal["True", "False", "Unknown"]

# The reason pattern and lengths are metav1.Condition's own, so our conditions pass the same checks.
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class Condition(BaseModel):
    """One aspect of the object's state, as metav1.Condition defines it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: str = Field(
        description="Type of the condition, in CamelCase (e.g. Ready).",
        min_length=1,
        max_length=316,
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        description="A stable, CamelCase code for the last transition; tools match on it.",
        min_length=1,
        max_length=1024,
        pattern=REASON_PATTERN,
    )
    message: str = Field(
        default="",
        description="A sentence for humans about the transition, saying what to do if anything.",
        max_length=32768,
    )
    lastTransitionTime: str = Field(
        description="When status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observedGeneration: int | None = Field(
        default=None,
        description="The .metadata.generation the condition was set from.",
        ge=0,
    )


def set_condition(
    conditions: Sequence[Condition],
    *,
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: datetime.datetime,
) -> list[Condition]:
    """Return ``conditions`` with ``type`` set; the others are kept as they are, in order."""
    result: list[Condition] = []
    found = False
    for existing in conditions:
        if existing.type != type:
            result.append(existing)
            continue
        found = True
        moved = existing.status != status
        result.append(
            Condition(
                type=type,
                status=status,
                reason=reason,
                message=message,
                lastTransitionTime=rfc3339(now) if moved else existing.lastTransitionTime,
                observedGeneration=observed_generation,
            )
        )
    if not found:
        result.append(
            Condition(
                type=type,
                status=status,
                reason=reason,
                message=message,
                lastTransitionTime=rfc3339(now),
                observedGeneration=observed_generation,
            )
        )
    return result
