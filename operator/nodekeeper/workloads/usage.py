"""Every sampling interval: which Workload containers run, and what their cgroups say.

One Docker listing (running containers with the Workload label) and the cgroup reads, both in a
thread; the result is what ``nodekeeper_workload_*`` metrics export until the next sample. A
failed listing is logged and retried next interval; the last sample stays.
"""

import asyncio
import logging

from nodekeeper.api.names import LABEL_NAME, LABEL_NAMESPACE, LABEL_WORKLOAD_UID
from nodekeeper.pressure.usage import WorkloadKey, WorkloadUsage, workload_containers
from nodekeeper.runtime.errors import DockerError
from nodekeeper.runtime.protocols import ContainerRuntime

logger = logging.getLogger(__name__)


async def running_workloads(containers: ContainerRuntime) -> list[tuple[WorkloadKey, str]]:
    """``(workload, container id)`` of the running Workload containers this node's agent made
    (one Docker listing): what the sampler reads, and what ``nodekeeper pressure`` shows."""
    found = await containers.running_with(LABEL_WORKLOAD_UID)
    running = {cid: labels for cid, labels in found.items() if containers.ours(labels)}
    return workload_containers(running, namespace_label=LABEL_NAMESPACE, name_label=LABEL_NAME)


async def sample_once(containers: ContainerRuntime, usage: WorkloadUsage) -> int:
    """Sample now; returns how many containers were read."""
    pairs = await running_workloads(containers)
    return len(await asyncio.to_thread(usage.sample, pairs))


async def sampler(
    containers: ContainerRuntime, usage: WorkloadUsage, *, interval_seconds: float
) -> None:
    """Sample every ``interval_seconds`` until cancelled."""
    while True:
        try:
            await sample_once(containers, usage)
        except DockerError as e:
            logger.warning("workload usage not sampled; retrying", extra={"error": str(e)})
        await asyncio.sleep(interval_seconds)
