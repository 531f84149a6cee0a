"""Labels that make runs findable, and history limits per policy and node.

The owning agent keeps ``nodekeeper.io/policy``, ``nodekeeper.io/node`` and
``nodekeeper.io/phase`` current, so ``kubectl get br -l nodekeeper.io/phase=Failed`` works.
After a run ends it deletes the oldest finished runs of the same namespace, policy and node
beyond the limits (succeeded, and failed which includes PartiallyFailed), as a CronJob's
history limits do. Runs still Pending or Running are never counted or deleted. The list comes
from the API server (label and field selectors), never from memory.
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from nodekeeper.api.names import LABEL_NODE, LABEL_PHASE, LABEL_POLICY
from nodekeeper.kube.backupruns import BackupRuns

logger = logging.getLogger(__name__)

DEFAULT_SUCCEEDED_LIMIT = 10
DEFAULT_FAILED_LIMIT = 5
FAILED_PHASES = frozenset({"Failed", "PartiallyFailed"})


def wanted_labels(body: Mapping[str, Any], phase: str | None) -> dict[str, str]:
    spec = body.get("spec") or {}
    labels = {LABEL_POLICY: str(spec.get("policy", "")), LABEL_NODE: str(spec.get("nodeName", ""))}
    if phase:
        labels[LABEL_PHASE] = phase
    return labels


def _finished_key(run: Mapping[str, Any]) -> tuple[str, str]:
    status = run.get("status") or {}
    metadata = run.get("metadata") or {}
    return (
        str(status.get("completionTime") or metadata.get("creationTimestamp") or ""),
        str(metadata.get("name", "")),
    )


def select_for_deletion(
    runs: Sequence[Mapping[str, Any]], *, succeeded_limit: int, failed_limit: int
) -> list[Mapping[str, Any]]:
    """The finished runs beyond the limits, oldest first (by completion, then creation)."""
    succeeded = [r for r in runs if (r.get("status") or {}).get("phase") == "Succeeded"]
    failed = [r for r in runs if (r.get("status") or {}).get("phase") in FAILED_PHASES]
    doomed: list[Mapping[str, Any]] = []
    for group, limit in ((succeeded, succeeded_limit), (failed, failed_limit)):
        ordered = sorted(group, key=_finished_key)
        doomed.extend(ordered[: max(len(ordered) - limit, 0)])
    return sorted(doomed, key=_finished_key)


class History:
    def __init__(
        self,
        runs: BackupRuns,
        *,
        node_name: str,
        succeeded_limit: int = DEFAULT_SUCCEEDED_LIMIT,
        failed_limit: int = DEFAULT_FAILED_LIMIT,
    ) -> None:
        self._runs = runs
        self._node_name = node_name
        self.succeeded_limit = succeeded_limit
        self.failed_limit = failed_limit

    async def label(self, body: Mapping[str, Any], phase: str | None) -> bool:
        """Bring the run's labels up to date; True when a patch was sent."""
        metadata = body.get("metadata") or {}
        current = metadata.get("labels") or {}
        wanted = wanted_labels(body, phase)
        if all(current.get(key) == value for key, value in wanted.items()):
            return False
        await self._runs.label(metadata["namespace"], metadata["name"], wanted)
        return True

    async def prune(self, namespace: str, policy: str) -> list[str]:
        """Delete this node's oldest finished runs of ``policy`` beyond the limits."""
        runs = await self._runs.all(
            namespace,
            label_selector=f"{LABEL_POLICY}={policy}",
            field_selector=f"spec.nodeName={self._node_name}",
        )
        runs = [r for r in runs if (r.get("spec") or {}).get("policy") == policy]
        deleted: list[str] = []
        for run in select_for_deletion(
            runs, succeeded_limit=self.succeeded_limit, failed_limit=self.failed_limit
        ):
            metadata = run["metadata"]
            if await self._runs.delete(namespace, metadata["name"], metadata["uid"]):
                deleted.append(metadata["name"])
        if deleted:
            logger.info(
                "old backup runs deleted by the history limits",
                extra={"namespace": namespace, "policy": policy, "runs": deleted},
            )
        return deleted
