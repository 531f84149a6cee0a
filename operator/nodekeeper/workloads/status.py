"""A Workload's status, written by two field managers that never erase each other's fields.

- the **admission** writer (``nodekeeper-agent``) owns ``observedGeneration``, ``errorCode``,
  ``message`` and the ``Admitted`` condition: what the spec and the node's gates decided;
- the **runtime** writer (``nodekeeper-runtime``) owns ``phase``, ``containerID``, ``restarts``,
  ``lastExitCode``, ``nextRetryAt`` and the ``Ready`` condition: what the container does.

Each apply carries every field its writer owns, so a stale body cannot resurrect an old value;
an apply that changes nothing is not sent (kube/status.py).
"""

import datetime
from collections.abc import Mapping
from typing import Any

from nodekeeper.api.times import rfc3339
from nodekeeper.api.workload import ADMITTED, READY
from nodekeeper.kube.protocols import StatusApplier
from nodekeeper.kube.status import ConditionChange
from nodekeeper.workloads.policy import Observation

ADMISSION_FIELDS = ("observedGeneration", "errorCode", "message")
ADMISSION_CONDITIONS = (ADMITTED,)
RUNTIME_FIELDS = ("phase", "containerID", "restarts", "lastExitCode", "nextRetryAt")
RUNTIME_CONDITIONS = (READY,)


class WorkloadStatus:
    def __init__(self, *, admission: StatusApplier, runtime: StatusApplier) -> None:
        self.admission_writer = admission
        self.runtime_writer = runtime

    async def admission(
        self,
        body: Mapping[str, Any],
        *,
        admitted: bool,
        reason: str,
        message: str,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bool:
        """The admission verdict; True when a write was sent."""
        return await self.admission_writer.apply(
            body,
            fields={
                "observedGeneration": (body.get("metadata") or {}).get("generation"),
                "errorCode": error_code,
                "message": error_message,
            },
            conditions=[
                ConditionChange(ADMITTED, "True" if admitted else "False", reason, message)
            ],
        )

    async def runtime(
        self, body: Mapping[str, Any], observation: Observation, *, restarts: int
    ) -> bool:
        """What the container does; True when a write was sent."""
        retry_at = None
        if observation.retry_at is not None:
            moment = datetime.datetime.fromtimestamp(observation.retry_at, tz=datetime.UTC)
            retry_at = rfc3339(moment)
        return await self.runtime_writer.apply(
            body,
            fields={
                "phase": observation.phase,
                "containerID": observation.container_id,
                "restarts": restarts,
                "lastExitCode": observation.exit_code,
                "nextRetryAt": retry_at,
            },
            conditions=[
                ConditionChange(
                    READY,
                    "True" if observation.ready else "False",
                    observation.reason,
                    observation.message,
                )
            ],
        )
