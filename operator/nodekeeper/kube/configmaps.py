"""ConfigMaps holding binary data, owned by another object, written with server-side apply.

BackupRun logs live here (``backups.runlogs`` decides names and layout). Apply makes a write
idempotent: writing the same chunk twice (an agent restarted half-way) changes nothing, and a
ConfigMap whose owner is gone is collected by Kubernetes' garbage collector.
"""

import asyncio
import base64
import dataclasses
from collections.abc import Mapping
from typing import Any

import kubernetes.client

from nodekeeper.api.names import LOGS_FIELD_MANAGER
from nodekeeper.kube.client import APPLY_PATCH
from nodekeeper.kube.errors import KubeNotFound, calling


@dataclasses.dataclass(frozen=True)
class Owner:
    """The object a ConfigMap belongs to (its controller): deleting it deletes the ConfigMap."""

    api_version: str
    kind: str
    name: str
    uid: str


@dataclasses.dataclass(frozen=True)
class BinaryConfigMap:
    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    binary_data: Mapping[str, bytes]
    owner_uids: tuple[str, ...] = ()


def _from_api(item: Any) -> BinaryConfigMap:
    meta = item.metadata
    return BinaryConfigMap(
        name=meta.name,
        labels=dict(meta.labels or {}),
        annotations=dict(meta.annotations or {}),
        binary_data={
            key: base64.b64decode(value) for key, value in (item.binary_data or {}).items()
        },
        owner_uids=tuple(ref.uid for ref in meta.owner_references or ()),
    )


class ConfigMaps:
    def __init__(
        self, api: kubernetes.client.ApiClient, *, field_manager: str = LOGS_FIELD_MANAGER
    ) -> None:
        self._api = kubernetes.client.CoreV1Api(api)
        self._field_manager = field_manager

    async def apply(self, namespace: str, config_map: BinaryConfigMap, owner: Owner) -> None:
        document: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": config_map.name,
                "namespace": namespace,
                "labels": dict(config_map.labels),
                "annotations": dict(config_map.annotations),
                "ownerReferences": [
                    {
                        "apiVersion": owner.api_version,
                        "kind": owner.kind,
                        "name": owner.name,
                        "uid": owner.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "binaryData": {
                key: base64.b64encode(value).decode()
                for key, value in config_map.binary_data.items()
            },
        }

        def send() -> object:
            return self._api.patch_namespaced_config_map(
                config_map.name,
                namespace,
                document,
                field_manager=self._field_manager,
                force=True,
                _content_type=APPLY_PATCH,
            )

        await asyncio.to_thread(calling, send)

    async def list(self, namespace: str, *, label_selector: str) -> list[BinaryConfigMap]:
        def fetch() -> list[BinaryConfigMap]:
            found: list[BinaryConfigMap] = []
            token = None
            while True:
                page = self._api.list_namespaced_config_map(
                    namespace, label_selector=label_selector, limit=100, _continue=token
                )
                found.extend(_from_api(item) for item in page.items)
                token = page.metadata._continue if page.metadata else None
                if not token:
                    return found

        return await asyncio.to_thread(calling, fetch)

    async def delete(self, namespace: str, name: str) -> bool:
        """Delete one ConfigMap; False when it was already gone."""
        try:
            await asyncio.to_thread(
                calling, lambda: self._api.delete_namespaced_config_map(name, namespace)
            )
        except KubeNotFound:
            return False
        return True
