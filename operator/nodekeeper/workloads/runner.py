"""Workloads as Docker containers: one labelled container per Workload.

A container carries the Workload's uid, namespace, name and a hash of its spec. A spec change
gives a new hash, and the old container is replaced (through the runtime's removal handshake, so
its last log lines are stored first).
"""

import hashlib
import json

from nodekeeper.api.names import LABEL_NAME, LABEL_NAMESPACE, LABEL_SPEC_HASH, LABEL_WORKLOAD_UID
from nodekeeper.api.quantities import memory_bytes, nano_cpus
from nodekeeper.api.refs import ObjectRef
from nodekeeper.api.workload import WorkloadSpec
from nodekeeper.runtime.containers import ContainerSpec, ContainerState
from nodekeeper.runtime.protocols import ContainerRuntime


def spec_hash(spec: WorkloadSpec) -> str:
    # Only what shapes the container: restart and TTL settings do not need a new container.
    shaping = spec.model_dump(
        mode="json", include={"image", "command", "args", "env", "resources"}, exclude_none=True
    )
    encoded = json.dumps(shaping, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def container_spec(ref: ObjectRef, spec: WorkloadSpec) -> ContainerSpec:
    limits = spec.resources.limits if spec.resources and spec.resources.limits else None
    return ContainerSpec(
        # Docker names are unique per engine; the uid suffix keeps a recreated Workload apart.
        name=f"nk-{ref.namespace}-{ref.name}-{ref.uid[:8]}"[:128],
        image=spec.image,
        command=spec.command,
        args=spec.args,
        env={variable.name: variable.value for variable in spec.env or []},
        labels={
            LABEL_WORKLOAD_UID: ref.uid,
            LABEL_NAMESPACE: ref.namespace,
            LABEL_NAME: ref.name,
            LABEL_SPEC_HASH: spec_hash(spec),
        },
        memory_bytes=memory_bytes(limits.memory) if limits and limits.memory is not None else None,
        nano_cpus=nano_cpus(limits.cpu) if limits and limits.cpu is not None else None,
    )


class WorkloadRunner:
    def __init__(self, containers: ContainerRuntime) -> None:
        self.containers = containers

    async def current(self, ref: ObjectRef) -> ContainerState | None:
        found = await self.containers.find({LABEL_WORKLOAD_UID: ref.uid})
        return found[0] if found else None

    async def ensure(self, ref: ObjectRef, spec: WorkloadSpec) -> tuple[ContainerState, bool]:
        """The Workload's container for this spec, created if needed; True when it is new."""
        wanted = spec_hash(spec)
        found = await self.containers.find({LABEL_WORKLOAD_UID: ref.uid})
        keep = next((c for c in found if c.labels.get(LABEL_SPEC_HASH) == wanted), None)
        for stale in found:
            if stale is not keep:
                await self.containers.remove(stale.id)
        if keep is not None:
            return keep, False
        return await self.containers.run(container_spec(ref, spec)), True

    async def restart(self, container_id: str) -> None:
        await self.containers.start(container_id)

    async def remove_all(self, ref: ObjectRef) -> int:
        removed = 0
        for state in await self.containers.find({LABEL_WORKLOAD_UID: ref.uid}):
            removed += await self.containers.remove(state.id)
        return removed
