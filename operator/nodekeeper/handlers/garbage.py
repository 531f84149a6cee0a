"""Garbage collection of containers whose Workload is gone.

A container labelled with a Workload uid that this node's Workloads no longer include is an
orphan: its Workload was deleted while the agent was down, or its finalizer was released. The
list of Workloads comes from the API server (field selector on this node), never from memory, so
an agent that just started cannot mistake a Workload it has not seen yet for a deleted one.
Containers younger than the grace period are left alone, so a container created between the two
listings is never taken for an orphan.
"""

import asyncio
import datetime
import logging

from nodekeeper.api.workload import PLURAL
from nodekeeper.handlers.context import AgentContext
from nodekeeper.kube.errors import KubeError
from nodekeeper.runtime.containers import MANAGED_LABEL
from nodekeeper.runtime.errors import DockerError
from nodekeeper.runtime.workloads import LABEL_NAME, LABEL_NAMESPACE, LABEL_UID

logger = logging.getLogger(__name__)


def _age_seconds(created: str, now: datetime.datetime) -> float:
    try:
        moment = datetime.datetime.fromisoformat(created.rstrip("Z").split(".")[0])
    except ValueError:
        return 0.0  # unknown age: treat as brand new, never as an orphan
    return (now - moment.replace(tzinfo=datetime.UTC)).total_seconds()


async def collect(context: AgentContext, *, grace_seconds: float) -> int:
    """Remove orphaned Workload containers once; returns how many were removed."""
    containers = await context.workloads.containers.find({MANAGED_LABEL: "true"})
    candidates = [c for c in containers if c.labels.get(LABEL_UID)]
    if not candidates:
        return 0
    live = {ref.uid for ref in await context.objects.list_on_node(PLURAL, context.node_name)}
    now = datetime.datetime.now(tz=datetime.UTC)
    removed = 0
    for container in candidates:
        if (
            container.labels[LABEL_UID] in live
            or _age_seconds(container.created, now) < grace_seconds
        ):
            continue
        if await context.workloads.containers.remove(container.id):
            removed += 1
            context.metrics.garbage_collected.labels(action="orphan_removed").inc()
            logger.info(
                "orphaned container removed",
                extra={
                    "container": container.id[:12],
                    "object": f"{container.labels.get(LABEL_NAMESPACE)}/"
                    f"{container.labels.get(LABEL_NAME)}",
                },
            )
    return removed


async def collector(
    context: AgentContext, *, interval_seconds: float, grace_seconds: float
) -> None:
    """Collect garbage every interval until cancelled; failures are logged and retried."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            await collect(context, grace_seconds=grace_seconds)
        except (KubeError, DockerError) as e:
            logger.warning("garbage collection failed; retrying", extra={"error": str(e)})
