"""In-memory stand-ins for the kube boundary classes the backup services use."""

import copy
from collections.abc import Mapping
from typing import Any

from nodekeeper.kube.backupruns import Page
from nodekeeper.kube.configmaps import BinaryConfigMap, Owner
from nodekeeper.kube.errors import KubeConflict, KubeNotFound


class FakeConfigMaps:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], BinaryConfigMap] = {}
        self.applies = 0

    async def apply(self, namespace: str, config_map: BinaryConfigMap, owner: Owner) -> None:
        self.applies += 1
        self.items[namespace, config_map.name] = BinaryConfigMap(
            name=config_map.name,
            labels=dict(config_map.labels),
            annotations=dict(config_map.annotations),
            binary_data=dict(config_map.binary_data),
            owner_uids=(owner.uid,),
        )

    async def list(self, namespace: str, *, label_selector: str) -> list[BinaryConfigMap]:
        key, _, value = label_selector.partition("=")
        return [
            item
            for (ns, _), item in self.items.items()
            if ns == namespace and item.labels.get(key) == value
        ]

    async def delete(self, namespace: str, name: str) -> bool:
        return self.items.pop((namespace, name), None) is not None


def _matches(run: Mapping[str, Any], labels: str | None, fields: str | None) -> bool:
    for selector in (labels or "").split(","):
        if selector:
            key, _, value = selector.partition("=")
            if (run["metadata"].get("labels") or {}).get(key) != value:
                return False
    if fields:
        _, _, node = fields.partition("=")
        if run["spec"].get("nodeName") != node:
            return False
    return True


class FakeBackupRuns:
    def __init__(self, runs: list[dict[str, Any]] | None = None) -> None:
        self.runs = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in runs or []}
        self.uids = 0

    async def page(
        self,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> Page:
        found = [
            copy.deepcopy(run)
            for (ns, _), run in sorted(self.runs.items())
            if (namespace is None or ns == namespace)
            and _matches(run, label_selector, field_selector)
        ]
        start = int(continue_token or 0)
        end = start + limit if limit else len(found)
        token = str(end) if end < len(found) else None
        return Page(items=found[start:end], continue_token=token)

    async def all(
        self,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        page = await self.page(
            namespace, label_selector=label_selector, field_selector=field_selector
        )
        return page.items

    async def get(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            return copy.deepcopy(self.runs[namespace, name])
        except KeyError:
            raise KubeNotFound(f"{name} not found", status=404) from None

    async def create(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if (namespace, name) in self.runs:
            raise KubeConflict(f"{name} already exists", status=409)
        self.uids += 1
        made = copy.deepcopy(dict(body))
        made["metadata"]["uid"] = f"uid-{self.uids}"
        self.runs[namespace, name] = made
        return copy.deepcopy(made)

    async def label(self, namespace: str, name: str, labels: Mapping[str, str]) -> None:
        self.runs[namespace, name]["metadata"].setdefault("labels", {}).update(labels)

    async def delete(self, namespace: str, name: str, uid: str) -> bool:
        return self.runs.pop((namespace, name), None) is not None


def run(
    name: str,
    *,
    namespace: str = "ns",
    node: str = "n1",
    policy: str = "daily",
    task_type: str = "backup",
    phase: str | None = None,
    created: str = "2026-01-01T00:00:00Z",
    completed: str | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if phase:
        status["phase"] = phase
    if completed:
        status["completionTime"] = completed
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "creationTimestamp": created,
            "labels": labels or {},
        },
        "spec": {"nodeName": node, "policy": policy, "taskType": task_type},
        "status": status,
    }
