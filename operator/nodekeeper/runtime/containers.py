"""Containers on the node's Docker engine: create, start, inspect, wait, remove.

Every container nodekeeper makes carries ``nodekeeper.io/*`` labels, so it can be found again
after a restart and told apart from containers nobody asked nodekeeper to run. A create that fails
half-way (created, then start refused) removes what it made: no half-made container is left.
"""

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import docker
import docker.models.containers

from nodekeeper.api.names import LABEL_MANAGED, LABEL_NODE
from nodekeeper.api.times import parse_ns
from nodekeeper.runtime.errors import ContainerNotFound, DockerError, calling

logger = logging.getLogger(__name__)


RemovalGate = Callable[[str], Awaitable[object]]


@dataclasses.dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    command: Sequence[str] | None = None
    args: Sequence[str] | None = None
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    memory_bytes: int | None = None
    nano_cpus: int | None = None
    # json-file is what the log pipeline tails; the size cap keeps a chatty task from filling disk.
    log_options: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: {"max-size": "10m", "max-file": "3"}
    )


@dataclasses.dataclass(frozen=True)
class ContainerState:
    id: str
    name: str
    image: str
    labels: Mapping[str, str]
    status: str  # created, running, exited, dead, ...
    exit_code: int | None
    oom_killed: bool
    started_at: str | None
    finished_at: str | None
    log_path: str | None
    created: str = ""

    @property
    def running(self) -> bool:
        return self.status == "running"


def _state(attrs: Mapping[str, Any]) -> ContainerState:
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    status = str(state.get("Status", "unknown"))
    return ContainerState(
        id=str(attrs["Id"]),
        name=str(attrs.get("Name", "")).lstrip("/"),
        image=str(config.get("Image", "")),
        labels=dict(config.get("Labels") or {}),
        status=status,
        exit_code=int(state["ExitCode"]) if status in ("exited", "dead") else None,
        oom_killed=bool(state.get("OOMKilled", False)),
        started_at=state.get("StartedAt"),
        finished_at=state.get("FinishedAt") if status in ("exited", "dead") else None,
        log_path=attrs.get("LogPath") or None,
        created=str(attrs.get("Created", "")),
    )


class Containers:
    """The node's Docker engine, as nodekeeper uses it."""

    def __init__(self, client: docker.DockerClient, *, node_name: str | None = None) -> None:
        self._client = client
        self.node_name = node_name  # labels what it creates, see LABEL_NODE
        # The removal handshake: awaited between stopping a container and removing it, so the
        # log pipeline stores its last line before Docker deletes the log (see remove()).
        self.removal_gate: RemovalGate | None = None

    @property
    def client(self) -> docker.DockerClient:
        return self._client

    def ours(self, labels: Mapping[str, str]) -> bool:
        """Whether this agent made the container: its node label names this node, or it has
        none (made before the label existed). A client for no node (the CLI outside a pod)
        counts every container as its own."""
        if self.node_name is None:
            return True
        return labels.get(LABEL_NODE, self.node_name) == self.node_name

    @classmethod
    def unconnected(cls, base_url: str) -> "Containers":
        """A client that never contacts the engine unless used: for an agent that runs no
        Workloads or BackupRuns and may have no Docker socket at all."""
        return cls(
            docker.DockerClient(
                base_url=base_url, version=docker.constants.DEFAULT_DOCKER_API_VERSION
            )
        )

    @classmethod
    def connect(cls, base_url: str, *, node_name: str | None = None) -> "Containers":
        client = calling(
            "connecting", lambda: docker.DockerClient(base_url=base_url, version="auto")
        )
        return cls(client, node_name=node_name)

    def close(self) -> None:
        self._client.close()

    async def ping(self) -> None:
        await asyncio.to_thread(calling, "pinging the engine", self._client.ping)

    async def run(self, spec: ContainerSpec) -> ContainerState:
        """Create and start a container; on any failure nothing of it is left behind."""
        return await asyncio.to_thread(self._run, spec)

    def _run(self, spec: ContainerSpec) -> ContainerState:
        labels = {**spec.labels, LABEL_MANAGED: "true"}
        if self.node_name:
            labels[LABEL_NODE] = self.node_name
        kwargs: dict[str, Any] = {
            "image": spec.image,
            "name": spec.name,
            "environment": dict(spec.env),
            "labels": labels,
            "detach": True,
            "log_config": {"Type": "json-file", "Config": dict(spec.log_options)},
        }
        if spec.command is not None:
            kwargs["entrypoint"] = list(spec.command)
        if spec.args is not None:
            kwargs["command"] = list(spec.args)
        if spec.memory_bytes is not None:
            kwargs["mem_limit"] = spec.memory_bytes
            kwargs["memswap_limit"] = spec.memory_bytes  # no swap on top, as Kubernetes does
        if spec.nano_cpus is not None:
            kwargs["nano_cpus"] = spec.nano_cpus
        container: docker.models.containers.Container = calling(
            f"creating container {spec.name}", lambda: self._client.containers.create(**kwargs)
        )
        try:
            calling(f"starting container {spec.name}", container.start)
            calling(f"inspecting container {spec.name}", container.reload)
        except DockerError:
            self._remove_quietly(container.id)
            raise
        return _state(container.attrs)

    def _remove_quietly(self, container_id: str) -> None:
        try:
            calling(
                f"removing container {container_id}",
                lambda: self._client.api.remove_container(container_id, force=True),
            )
        except DockerError as e:
            logger.warning("could not remove a half-made container", extra={"error": str(e)})

    async def start(self, container_id: str) -> None:
        """Start an existing (exited) container again; its json-file log continues."""
        await asyncio.to_thread(
            calling,
            f"starting container {container_id}",
            lambda: self._client.api.start(container_id),
        )

    async def inspect(self, container_id: str) -> ContainerState:
        attrs = await asyncio.to_thread(
            calling,
            f"inspecting container {container_id}",
            lambda: self._client.api.inspect_container(container_id),
        )
        return _state(attrs)

    async def running_with(self, label: str) -> dict[str, Mapping[str, str]]:
        """Running containers that carry ``label`` (any value): id -> labels. One listing call,
        no inspection: cheap enough for periodic sampling."""
        filters = {"label": [label], "status": ["running"]}

        def listing() -> dict[str, Mapping[str, str]]:
            found = self._client.api.containers(filters=filters)
            return {str(summary["Id"]): dict(summary.get("Labels") or {}) for summary in found}

        return await asyncio.to_thread(calling, "listing running containers", listing)

    async def find(self, labels: Mapping[str, str]) -> list[ContainerState]:
        """Containers (running or not) carrying all of ``labels``."""
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}

        def listing() -> list[ContainerState]:
            found = self._client.api.containers(all=True, filters=filters)
            states: list[ContainerState] = []
            for summary in found:
                try:
                    states.append(_state(self._client.api.inspect_container(summary["Id"])))
                except docker.errors.NotFound:
                    continue  # removed between the listing and the inspection
            # Newest first, so callers that want "the" container take the first.
            return sorted(states, key=lambda state: parse_ns(state.created) or 0, reverse=True)

        return await asyncio.to_thread(calling, "listing containers", listing)

    async def wait(self, container_id: str, deadline_seconds: float) -> ContainerState:
        """Wait until the container exits (at most ``deadline_seconds``) and return its state."""
        await asyncio.to_thread(
            calling,
            f"waiting for container {container_id}",
            lambda: self._client.api.wait(container_id, timeout=deadline_seconds),
        )
        return await self.inspect(container_id)

    async def stop(self, container_id: str) -> None:
        """Kill a running container and return once it has exited (a stopped one: no-op)."""
        await asyncio.to_thread(
            calling,
            f"stopping container {container_id}",
            # timeout=0: SIGKILL at once; stop returns once the container has exited and Docker
            # has written its last log line.
            lambda: self._client.api.stop(container_id, timeout=0),
        )

    async def remove(self, container_id: str) -> bool:
        """Remove a container, stopping it first; False when it was already gone.

        With a removal gate, the container is killed, the gate is awaited (it returns once the
        container's log is stored, or gives up after its own bounded wait), then it is removed.
        """
        try:
            if self.removal_gate is not None:
                await self.stop(container_id)  # SIGKILL, as the forced remove did
                await self.removal_gate(container_id)
            await asyncio.to_thread(
                calling,
                f"removing container {container_id}",
                lambda: self._client.api.remove_container(container_id, force=True),
            )
        except ContainerNotFound:
            return False
        return True
