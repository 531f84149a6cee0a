"""Reading, deleting and releasing this API's objects (beyond status, which kube.status writes).

Lists always carry the ``spec.nodeName`` field selector: an agent asks only for its node's
objects, so the cost of a list does not grow with the cluster.
"""

import asyncio
import dataclasses
from typing import Any

import kubernetes.client

from nodekeeper.api import GROUP, VERSION
from nodekeeper.api.names import FINALIZER
from nodekeeper.api.refs import ObjectRef
from nodekeeper.kube.errors import KubeNotFound, calling


@dataclasses.dataclass(frozen=True)
class ListedObject:
    """An object as a list returned it: its reference and the finalizers it had then."""

    ref: ObjectRef
    finalizers: tuple[str, ...] = ()


class Objects:
    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self._api = kubernetes.client.CustomObjectsApi(api)

    async def list_on_node(self, plural: str, node_name: str) -> list[ListedObject]:
        """Every object of ``plural`` assigned to ``node_name``, in all namespaces."""

        def fetch() -> list[ListedObject]:
            refs: list[ListedObject] = []
            token = None
            while True:
                page: dict[str, Any] = self._api.list_cluster_custom_object(  # type: ignore[assignment]
                    GROUP,
                    VERSION,
                    plural,
                    field_selector=f"spec.nodeName={node_name}",
                    limit=500,
                    _continue=token,
                )
                for item in page.get("items", []):
                    finalizers = tuple(item["metadata"].get("finalizers") or ())
                    refs.append(ListedObject(ObjectRef.of(item), finalizers))
                token = (page.get("metadata") or {}).get("continue")
                if not token:
                    return refs

        return await asyncio.to_thread(calling, fetch)

    async def delete(self, plural: str, ref: ObjectRef) -> bool:
        """Delete the object if it is still the same one (uid precondition); False if gone."""

        def send() -> None:
            self._api.delete_namespaced_custom_object(
                GROUP,
                VERSION,
                ref.namespace,
                plural,
                ref.name,
                body=kubernetes.client.V1DeleteOptions(
                    preconditions=kubernetes.client.V1Preconditions(uid=ref.uid)
                ),
            )

        try:
            await asyncio.to_thread(calling, send)
        except KubeNotFound:
            return False
        return True

    async def release(self, plural: str, listed: ListedObject) -> bool:
        """Remove nodekeeper's finalizer, keeping any others; False if it had none."""
        ref = listed.ref
        if FINALIZER not in listed.finalizers:
            return False
        kept = [f for f in listed.finalizers if f != FINALIZER]
        # A JSON patch with a test: if the finalizers changed meanwhile, the server refuses it.
        patch = [
            {"op": "test", "path": "/metadata/finalizers", "value": list(listed.finalizers)},
            {"op": "replace", "path": "/metadata/finalizers", "value": kept},
        ]

        def send() -> None:
            self._api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                ref.namespace,
                plural,
                ref.name,
                patch,
                _content_type="application/json-patch+json",
            )

        await asyncio.to_thread(calling, send)
        return True
