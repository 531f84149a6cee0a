"""BackupRun objects beyond their status: list (with paging), get, create, label, delete.

Listing pages through the API server's own ``limit``/``continue`` and filters by labels and,
for an agent, by ``spec.nodeName`` (a selectable field), so the server does the filtering.
"""

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any, cast

import kubernetes.client

from nodekeeper.api import GROUP, VERSION
from nodekeeper.api.backuprun import PLURAL
from nodekeeper.kube.errors import KubeNotFound, calling


@dataclasses.dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    continue_token: str | None


class BackupRuns:
    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self._api = kubernetes.client.CustomObjectsApi(api)

    async def page(
        self,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> Page:
        """One page as the API server returns it (``namespace`` None: all namespaces)."""
        options: dict[str, Any] = {}
        if label_selector:
            options["label_selector"] = label_selector
        if field_selector:
            options["field_selector"] = field_selector
        if limit:
            options["limit"] = limit
        if continue_token:
            options["_continue"] = continue_token

        def fetch() -> dict[str, Any]:
            if namespace is None:
                result = self._api.list_cluster_custom_object(GROUP, VERSION, PLURAL, **options)
            else:
                result = self._api.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, **options
                )
            return cast(dict[str, Any], result)

        found = await asyncio.to_thread(calling, fetch)
        token = (found.get("metadata") or {}).get("continue") or None
        return Page(items=list(found.get("items") or []), continue_token=token)

    async def all(
        self,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await self.page(
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                limit=500,
                continue_token=token,
            )
            items.extend(page.items)
            token = page.continue_token
            if not token:
                return items

    async def get(self, namespace: str, name: str) -> dict[str, Any]:
        def fetch() -> dict[str, Any]:
            found = self._api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            return cast(dict[str, Any], found)

        return await asyncio.to_thread(calling, fetch)

    async def create(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        def send() -> dict[str, Any]:
            made = self._api.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, dict(body)
            )
            return cast(dict[str, Any], made)

        return await asyncio.to_thread(calling, send)

    async def label(self, namespace: str, name: str, labels: Mapping[str, str]) -> None:
        """Merge ``labels`` into the object's labels (a merge patch on metadata only)."""
        patch = {"metadata": {"labels": dict(labels)}}

        def send() -> object:
            return self._api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                patch,
                _content_type="application/merge-patch+json",
            )

        await asyncio.to_thread(calling, send)

    async def delete(self, namespace: str, name: str, uid: str) -> bool:
        """Delete the run if it is still the same one (uid precondition); False if gone."""

        def send() -> None:
            self._api.delete_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body=kubernetes.client.V1DeleteOptions(
                    preconditions=kubernetes.client.V1Preconditions(uid=uid)
                ),
            )

        try:
            await asyncio.to_thread(calling, send)
        except KubeNotFound:
            return False
        return True
