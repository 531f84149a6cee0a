"""What the services need from the API server, as Protocols.

The classes beside this module (``status.StatusWriter``, ``objects.Objects``,
``events.NodeEvents``, ``secrets.Secrets``, ``nodes.NodeConditionWriter``) are the real
implementations over the kubernetes client; ``tests/support/fakes.py`` has in-memory ones, so
Workload and node-pressure logic is tested without an API server, and again against the real
one in e2e. Errors raised through these are :mod:`nodekeeper.kube.errors`, whichever
implementation raised them.
"""

import datetime
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from nodekeeper.api.refs import ObjectRef
from nodekeeper.kube.events import EventType
from nodekeeper.kube.nodes import NodeCondition
from nodekeeper.kube.objects import ListedObject
from nodekeeper.kube.status import ConditionChange


class StatusApplier(Protocol):
    """Server-side apply of the status fields and condition types one field manager owns."""

    def desired(
        self,
        body: Mapping[str, Any],
        *,
        fields: Mapping[str, Any],
        conditions: Sequence[ConditionChange] = (),
        now: datetime.datetime | None = None,
    ) -> dict[str, Any]:
        """The full status this writer owns after the changes, as it would be applied."""
        ...

    async def apply(
        self,
        body: Mapping[str, Any],
        *,
        fields: Mapping[str, Any],
        conditions: Sequence[ConditionChange] = (),
    ) -> bool:
        """Apply the changes; True when a write was sent, False when nothing changed."""
        ...


class ObjectStore(Protocol):
    """This API's objects on one node, beyond their status."""

    async def list_on_node(self, plural: str, node_name: str) -> list[ListedObject]: ...

    async def delete(self, plural: str, ref: ObjectRef) -> bool:
        """Delete the object if it is still the same one (uid); False when it was gone."""
        ...


class EventPoster(Protocol):
    """Events about one object (the Node, for the pressure reporter)."""

    async def post(
        self, *, type: EventType, reason: str, message: str, now: datetime.datetime | None = None
    ) -> None: ...


class SecretReader(Protocol):
    async def value(self, namespace: str, name: str, key: str) -> str:
        """One key of a Secret; SecretKeyMissing when it cannot be had."""
        ...


class NodeConditionPatcher(Protocol):
    async def patch(
        self, conditions: Sequence[NodeCondition], *, now: datetime.datetime | None = None
    ) -> Mapping[str, Any]:
        """Set the agent's conditions on its Node, leaving the kubelet's alone."""
        ...
