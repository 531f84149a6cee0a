"""Kubernetes Events the agent posts itself (kopf posts those about its handlers).

Events about a Node live in the ``default`` namespace, as the kubelet's do, so that
``kubectl describe node`` and ``kubectl get events --field-selector involvedObject.kind=Node``
show them next to the kubelet's. The reporting instance is the node name.
"""

import asyncio
import datetime
from typing import Literal

import kubernetes.client

from nodekeeper.api.names import COMPONENT
from nodekeeper.api.times import utcnow
from nodekeeper.kube.errors import calling

EventType = Literal["Normal", "Warning"]


class NodeEvents:
    def __init__(self, api: kubernetes.client.ApiClient, *, node_name: str) -> None:
        self._api = kubernetes.client.CoreV1Api(api)
        self._node_name = node_name

    async def post(
        self, *, type: EventType, reason: str, message: str, now: datetime.datetime | None = None
    ) -> None:
        moment = now or utcnow()
        event = kubernetes.client.CoreV1Event(
            metadata=kubernetes.client.V1ObjectMeta(generate_name=f"{self._node_name}.nodekeeper."),
            involved_object=kubernetes.client.V1ObjectReference(
                kind="Node", name=self._node_name, api_version="v1"
            ),
            type=type,
            reason=reason,
            message=message[:1024],
            source=kubernetes.client.V1EventSource(component=COMPONENT, host=self._node_name),
            reporting_component=COMPONENT,
            reporting_instance=self._node_name,
            first_timestamp=moment,
            last_timestamp=moment,
            count=1,
        )
        await asyncio.to_thread(
            calling, lambda: self._api.create_namespaced_event("default", event)
        )
