"""Workload handlers: admit the spec on this node and record what was decided.

Admission today is spec validation (the API server's schema covers most of it; this catches what
an emulator or an older CRD lets through). Starting containers, the image policy and the
pressure gate build on this handler.
"""

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from nodekeeper.api import GROUP, VERSION
from nodekeeper.api.codes import ADMITTED as REASON_ADMITTED
from nodekeeper.api.codes import INVALID_SPEC
from nodekeeper.api.workload import ADMITTED, KIND, PLURAL, WorkloadSpec
from nodekeeper.handlers.context import AgentContext
from nodekeeper.handlers.ownership import is_foreign, is_own
from nodekeeper.handlers.validation import explain
from nodekeeper.handlers.writing import retrying_status_writes
from nodekeeper.kube.status import ConditionChange

logger = logging.getLogger(__name__)


async def admit(body: kopf.Body, memo: AgentContext, **_: Any) -> None:
    generation = body.metadata.get("generation")
    try:
        WorkloadSpec.model_validate(dict(body.spec))
    except ValidationError as e:
        message = explain(e)
        memo.metrics.handler_errors.labels(kind=KIND, code=INVALID_SPEC).inc()
        async with retrying_status_writes():
            written = await memo.workload_status.apply(
                body,
                fields={
                    "observedGeneration": generation,
                    "phase": "Failed",
                    "errorCode": INVALID_SPEC,
                    "message": message,
                },
                conditions=[ConditionChange(ADMITTED, "False", INVALID_SPEC, message)],
            )
        if written:
            logger.warning(
                "workload refused",
                extra={
                    "object": f"{body.metadata.namespace}/{body.metadata.name}",
                    "error": message,
                },
            )
        return

    message = f"the spec is valid and node {memo.node_name} accepted it"
    async with retrying_status_writes():
        written = await memo.workload_status.apply(
            body,
            fields={
                "observedGeneration": generation,
                "phase": "Pending",
                "errorCode": None,
                "message": None,
            },
            conditions=[ConditionChange(ADMITTED, "True", REASON_ADMITTED, message)],
        )
    if written:
        logger.info(
            "workload admitted",
            extra={"object": f"{body.metadata.namespace}/{body.metadata.name}"},
        )


async def count_foreign(memo: AgentContext, **_: Any) -> None:
    memo.metrics.foreign_events.labels(kind=KIND).inc()


def register(registry: kopf.OperatorRegistry) -> None:
    resource = (GROUP, VERSION, PLURAL)
    kopf.on.resume(*resource, when=is_own, registry=registry, id="admit")(admit)
    kopf.on.create(*resource, when=is_own, registry=registry, id="admit")(admit)
    kopf.on.update(*resource, field="spec", when=is_own, registry=registry, id="admit")(admit)
    kopf.on.event(*resource, when=is_foreign, registry=registry, id="foreign")(count_foreign)
