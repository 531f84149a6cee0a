"""Garbage collection of containers whose Workload or BackupRun is gone.

A container labelled with a Workload (or BackupRun) uid that this node's objects of that kind no
longer include is an orphan: its object was deleted while the agent was down, or its finalizer
was released. The objects are listed from the API server (field selector on this node), never
taken from memory, so an agent that just started cannot mistake an object it has not seen yet
for a deleted one. Containers younger than the grace period are left alone, so a container
created between the two listings is never taken for an orphan.
"""

import asyncio
import datetime
import logging

from nodekeeper.api import backuprun, workload
from nodekeeper.api.names import (
    LABEL_BACKUPRUN_UID,
    LABEL_MANAGED,
    LABEL_NAME,
    LABEL_NAMESPACE,
    LABEL_WORKLOAD_UID,
)
from nodekeeper.api.times import parse_seconds
from nodekeeper.kube.errors import KubeError
from nodekeeper.kube.protocols import ObjectStore
from nodekeeper.metrics import Metrics
from nodekeeper.runtime.errors import DockerError
from nodekeeper.runtime.protocols import ContainerRuntime

# Which label names the owner of a container nodekeeper made, and where such owners are listed.
OWNERS = ((LABEL_WORKLOAD_UID, workload.PLURAL), (LABEL_BACKUPRUN_UID, backuprun.PLURAL))

logger = logging.getLogger(__name__)


def _age_seconds(created: str, now: datetime.datetime) -> float:
    moment = parse_seconds(created)
    if moment is None:
        return 0.0  # unknown age: treat as brand new, never as an orphan
    return now.timestamp() - moment


class GarbageCollector:
    """Removes this node's orphaned Workload and BackupRun containers, through the runtime's
    removal handshake (their last log lines are stored first)."""

    def __init__(
        self,
        *,
        containers: ContainerRuntime,
        objects: ObjectStore,
        node_name: str,
        metrics: Metrics,
        grace_seconds: float,
    ) -> None:
        self._containers = containers
        self._objects = objects
        self._node_name = node_name
        self._metrics = metrics
        self._grace_seconds = grace_seconds

    async def collect(self) -> int:
        """Remove orphaned containers once; returns how many were removed."""
        found = await self._containers.find({LABEL_MANAGED: "true"})
        containers = [c for c in found if self._containers.ours(c.labels)]  # never another's
        now = datetime.datetime.now(tz=datetime.UTC)
        removed = 0
        for label, plural in OWNERS:
            candidates = [c for c in containers if c.labels.get(label)]
            if not candidates:
                continue
            listed = await self._objects.list_on_node(plural, self._node_name)
            live = {item.ref.uid for item in listed}
            for container in candidates:
                if (
                    container.labels[label] in live
                    or _age_seconds(container.created, now) < self._grace_seconds
                ):
                    continue
                if await self._containers.remove(container.id):
                    removed += 1
                    self._metrics.garbage_collected.labels(action="orphan_removed").inc()
                    logger.info(
                        "orphaned container removed",
                        extra={
                            "container": container.id[:12],
                            "kind": plural,
                            "object": f"{container.labels.get(LABEL_NAMESPACE)}/"
                            f"{container.labels.get(LABEL_NAME)}",
                        },
                    )
        return removed

    async def run(self, *, interval_seconds: float) -> None:
        """Collect every interval until cancelled; failures are logged and retried."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.collect()
            except (KubeError, DockerError) as e:
                logger.warning("garbage collection failed; retrying", extra={"error": str(e)})
