"""BackupRun handlers: validate the spec on this node and record what was decided.

An invalid spec ends the run at once (phase Failed, ``Completed`` with reason InvalidSpec), so
``kubectl wait --for=condition=Completed`` returns instead of hanging. Executing tasks and
recording ingested results build on this handler.
"""

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from nodekeeper.api import GROUP, VERSION
from nodekeeper.api.backuprun import COMPLETED, KIND, PLURAL, BackupRunSpec
from nodekeeper.api.codes import INVALID_SPEC
from nodekeeper.handlers.context import AgentContext
from nodekeeper.handlers.ownership import is_foreign, is_own
from nodekeeper.handlers.validation import explain
from nodekeeper.handlers.writing import retrying_status_writes
from nodekeeper.kube.status import ConditionChange

logger = logging.getLogger(__name__)


async def accept(body: kopf.Body, memo: AgentContext, **_: Any) -> None:
    generation = body.metadata.get("generation")
    try:
        BackupRunSpec.model_validate(dict(body.spec))
    except ValidationError as e:
        message = explain(e)
        memo.metrics.handler_errors.labels(kind=KIND, code=INVALID_SPEC).inc()
        async with retrying_status_writes():
            await memo.backuprun_status.apply(
                body,
                fields={
                    "observedGeneration": generation,
                    "phase": "Failed",
                    "errorMessage": message,
                },
                conditions=[ConditionChange(COMPLETED, "True", INVALID_SPEC, message)],
            )
        return

    async with retrying_status_writes():
        await memo.backuprun_status.apply(
            body,
            fields={"observedGeneration": generation, "phase": "Pending", "errorMessage": None},
        )


async def count_foreign(memo: AgentContext, **_: Any) -> None:
    memo.metrics.foreign_events.labels(kind=KIND).inc()


def register(registry: kopf.OperatorRegistry) -> None:
    resource = (GROUP, VERSION, PLURAL)
    kopf.on.resume(*resource, when=is_own, registry=registry, id="accept")(accept)
    kopf.on.create(*resource, when=is_own, registry=registry, id="accept")(accept)
    kopf.on.update(*resource, field="spec", when=is_own, registry=registry, id="accept")(accept)
    kopf.on.event(*resource, when=is_foreign, registry=registry, id="foreign")(count_foreign)
