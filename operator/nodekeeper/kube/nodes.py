"""Node conditions: this agent's own condition types on its Node, and nothing else touched.

Node is a built-in type, so its status takes a strategic-merge patch, which merges
``conditions`` by ``type``: the kubelet's conditions (Ready, MemoryPressure, ...) stay as they
are. A JSON merge patch would replace the whole list and wipe them. Only ``nodes/<name>/status``
is patched; the agent never writes Node metadata or spec.
"""

import asyncio
import dataclasses
import datetime
from collections.abc import Sequence
from typing import Any

import kubernetes.client

from nodekeeper.api.times import rfc3339, utcnow
from nodekeeper.kube.client import STRATEGIC_MERGE_PATCH
from nodekeeper.kube.errors import calling


@dataclasses.dataclass(frozen=True)
class NodeCondition:
    type: str
    status: str  # "True", "False" or "Unknown"
    reason: str
    message: str


class NodeConditionWriter:
    def __init__(self, api: kubernetes.client.ApiClient, *, node_name: str) -> None:
        self._api = kubernetes.client.CoreV1Api(api)
        self._node_name = node_name

    async def patch(
        self, conditions: Sequence[NodeCondition], *, now: datetime.datetime | None = None
    ) -> dict[str, Any]:
        """Set ``conditions`` on this node; returns the patch that was sent."""
        moment = rfc3339(now or utcnow())

        def send() -> dict[str, Any]:
            node = self._api.read_node_status(self._node_name)
            existing = node.status.conditions if node.status is not None else None
            previous = {c.type: c for c in existing or []}
            entries = []
            for condition in conditions:
                before = previous.get(condition.type)
                since = before.last_transition_time if before is not None else None
                moved = before is None or before.status != condition.status or since is None
                transition = moment if moved or since is None else rfc3339(since)
                entries.append(
                    {
                        "type": condition.type,
                        "status": condition.status,
                        "reason": condition.reason,
                        "message": condition.message,
                        "lastHeartbeatTime": moment,
                        "lastTransitionTime": transition,
                    }
                )
            body = {"status": {"conditions": entries}}
            self._api.patch_node_status(self._node_name, body, _content_type=STRATEGIC_MERGE_PATCH)
            return body

        return await asyncio.to_thread(calling, send)
