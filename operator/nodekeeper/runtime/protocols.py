"""What the services need from the container runtime, as Protocols.

:class:`~nodekeeper.runtime.containers.Containers` (the Docker engine) and
:class:`~nodekeeper.runtime.events.ContainerEvents` (its event stream) are the real
implementations; ``tests/support/fakes.py`` has in-memory ones, so Workload and BackupRun logic
is tested without a Docker engine, and again against the real one. Errors raised through these
are :mod:`nodekeeper.runtime.errors`, whichever implementation raised them.
"""

import asyncio
from collections.abc import Mapping
from typing import Protocol

from nodekeeper.runtime.containers import ContainerSpec, ContainerState
from nodekeeper.runtime.events import ContainerEvent


class ContainerRuntime(Protocol):
    """Containers on this node's engine, labelled so they can be found again."""

    def ours(self, labels: Mapping[str, str]) -> bool:
        """Whether this node's agent made a container with these labels."""
        ...

    async def run(self, spec: ContainerSpec) -> ContainerState:
        """Create and start a container; on any failure nothing of it is left behind."""
        ...

    async def start(self, container_id: str) -> None: ...

    async def inspect(self, container_id: str) -> ContainerState: ...

    async def find(self, labels: Mapping[str, str]) -> list[ContainerState]:
        """Containers (running or not) carrying all of ``labels``, newest first."""
        ...

    async def running_with(self, label: str) -> dict[str, Mapping[str, str]]:
        """Running containers that carry ``label``: id -> labels."""
        ...

    async def wait(self, container_id: str, deadline_seconds: float) -> ContainerState: ...

    async def stop(self, container_id: str) -> None: ...

    async def remove(self, container_id: str) -> bool:
        """Remove a container after its log is stored; False when it was already gone."""
        ...


class ContainerEventSource(Protocol):
    """Container events routed by the value of a key label (a Workload's uid)."""

    def subscribe(self, key: str) -> asyncio.Queue[ContainerEvent]: ...

    def unsubscribe(self, key: str, queue: asyncio.Queue[ContainerEvent]) -> None: ...
