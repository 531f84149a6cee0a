"""Status writers: server-side apply on the status subresource, one field manager each.

Why server-side apply: custom resources have no strategic-merge patch, and a merge patch would
replace the whole ``conditions`` list. With apply and ``listType=map`` on conditions, each field
manager owns the condition types it sets, so two writers (say, the handler's and the Docker
events') never erase each other's conditions.

Apply semantics shape this class: a manager that omits a field it owned gives that field up, so
every apply carries the full set of fields this writer owns, taken from the object as last seen
and overlaid with the changes. When the result equals what the object already shows, nothing is
sent: status changes only when state changes.
"""

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import kubernetes.client

from nodekeeper.api import API_VERSION, GROUP, VERSION
from nodekeeper.api.conditions import Condition, ConditionStatus, set_condition
from nodekeeper.api.times import utcnow
from nodekeeper.kube.client import APPLY_PATCH
from nodekeeper.kube.errors import KubeError, calling
from nodekeeper.metrics import Metrics

logger = logging.getLogger(__name__)


class ForeignObjectError(KubeError):
    """A write was attempted on another node's object: a bug, refused before any request."""


@dataclasses.dataclass(frozen=True)
class ConditionChange:
    type: str
    status: ConditionStatus
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class Resource:
    kind: str
    plural: str


class StatusWriter:
    """Writes the status fields and condition types this writer owns, for one kind."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        *,
        resource: Resource,
        field_manager: str,
        fields: Sequence[str],
        condition_types: Sequence[str],
        node_name: str,
        metrics: Metrics,
    ) -> None:
        self._api = kubernetes.client.CustomObjectsApi(api)
        self._resource = resource
        self._field_manager = field_manager
        self._fields = tuple(fields)
        self._condition_types = frozenset(condition_types)
        self._node_name = node_name
        self._metrics = metrics

    def desired(
        self,
        body: Mapping[str, Any],
        *,
        fields: Mapping[str, Any],
        conditions: Sequence[ConditionChange] = (),
        now: datetime.datetime | None = None,
    ) -> dict[str, Any]:
        """The full status this writer owns after the changes, as it would be applied."""
        unknown = set(fields) - set(self._fields)
        if unknown:
            raise ValueError(f"{self._field_manager} does not own status fields {sorted(unknown)}")
        current: Mapping[str, Any] = body.get("status") or {}
        status: dict[str, Any] = {}
        for name in self._fields:
            value = fields[name] if name in fields else current.get(name)
            if value is not None:
                status[name] = value

        generation = (body.get("metadata") or {}).get("generation")
        existing = [Condition.model_validate(c) for c in current.get("conditions") or []]
        moment = now or utcnow()
        for change in conditions:
            if change.type not in self._condition_types:
                raise ValueError(f"{self._field_manager} does not own condition {change.type}")
            existing = set_condition(
                existing,
                type=change.type,
                status=change.status,
                reason=change.reason,
                message=change.message,
                observed_generation=generation,
                now=moment,
            )
        owned = [
            c.model_dump(exclude_none=True) for c in existing if c.type in self._condition_types
        ]
        if owned:
            status["conditions"] = owned
        return status

    def _unchanged(self, body: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
        current: Mapping[str, Any] = body.get("status") or {}
        for name in self._fields:
            if current.get(name) != status.get(name):
                return False
        seen = [
            c for c in current.get("conditions") or [] if c.get("type") in self._condition_types
        ]
        return sorted(seen, key=lambda c: c["type"]) == sorted(
            status.get("conditions", []), key=lambda c: c["type"]
        )

    async def apply(
        self,
        body: Mapping[str, Any],
        *,
        fields: Mapping[str, Any],
        conditions: Sequence[ConditionChange] = (),
    ) -> bool:
        """Apply the changes; True when a write was sent, False when nothing changed."""
        metadata = body.get("metadata") or {}
        owner = (body.get("spec") or {}).get("nodeName")
        if owner != self._node_name:
            raise ForeignObjectError(
                f"refusing to write status of {metadata.get('namespace')}/{metadata.get('name')}:"
                f" it belongs to node {owner!r}, this agent is {self._node_name!r}"
            )
        status = self.desired(body, fields=fields, conditions=conditions)
        kind = self._resource.kind
        if self._unchanged(body, status):
            self._metrics.status_writes.labels(kind=kind, outcome="unchanged").inc()
            return False

        document = {
            "apiVersion": API_VERSION,
            "kind": kind,
            "metadata": {"name": metadata["name"], "namespace": metadata["namespace"]},
            "status": status,
        }

        def send() -> object:
            return self._api.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                metadata["namespace"],
                self._resource.plural,
                metadata["name"],
                document,
                field_manager=self._field_manager,
                force=True,
                _content_type=APPLY_PATCH,
            )

        try:
            await asyncio.to_thread(calling, send)
        except KubeError:
            self._metrics.status_writes.labels(kind=kind, outcome="failed").inc()
            raise
        self._metrics.status_writes.labels(kind=kind, outcome="applied").inc()
        return True
