"""Docker's container events, as one stream fanned out to the objects that wait for them.

One thread reads the engine's events (only containers nodekeeper labelled) and hands each to
the asyncio loop, which routes it by the value of a key label (a Workload's uid) to whoever
subscribed to that value. When the stream breaks (dockerd restarted), it reconnects with backoff
and sends every subscriber a ``resync`` event: events missed while disconnected are not replayed,
so subscribers re-inspect their containers instead, which corrects any drift.
"""

import asyncio
import collections
import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import docker

from nodekeeper.api.names import LABEL_MANAGED
from nodekeeper.runtime.errors import DockerError, calling

logger = logging.getLogger(__name__)

RESYNC = "resync"
# Actions that change what a subscriber should report; others (exec_*, attach, ...) are dropped.
ACTIONS = frozenset({"create", "start", "die", "oom", "kill", "stop", "destroy", "restart"})
RECONNECT_SECONDS = (0.5, 1, 2, 5, 10)


@dataclasses.dataclass(frozen=True)
class ContainerEvent:
    action: str
    container_id: str
    labels: Mapping[str, str]
    exit_code: int | None = None


def parse(raw: Mapping[str, Any]) -> ContainerEvent | None:
    if raw.get("Type") != "container":
        return None
    action = str(raw.get("Action", "")).split(":", 1)[0]  # "health_status: healthy" -> health
    if action not in ACTIONS:
        return None
    actor = raw.get("Actor") or {}
    attributes = dict(actor.get("Attributes") or {})
    code = attributes.get("exitCode")
    return ContainerEvent(
        action=action,
        container_id=str(actor.get("ID", "")),
        labels=attributes,
        exit_code=int(code) if code is not None and str(code).lstrip("-").isdigit() else None,
    )


class ContainerEvents:
    def __init__(self, client: docker.DockerClient, *, key_label: str) -> None:
        self._client = client
        self._key_label = key_label
        self._subscribers: dict[str, list[asyncio.Queue[ContainerEvent]]] = collections.defaultdict(
            list
        )
        self.connected = asyncio.Event()

    def subscribe(self, key: str) -> asyncio.Queue[ContainerEvent]:
        queue: asyncio.Queue[ContainerEvent] = asyncio.Queue()
        self._subscribers[key].append(queue)
        return queue

    def unsubscribe(self, key: str, queue: asyncio.Queue[ContainerEvent]) -> None:
        queues = self._subscribers.get(key, [])
        if queue in queues:
            queues.remove(queue)
        if not queues:
            self._subscribers.pop(key, None)

    def notify(self, key: str, event: ContainerEvent) -> None:
        """Deliver an event to the subscribers of ``key`` (also used to nudge them)."""
        for queue in self._subscribers.get(key, []):
            queue.put_nowait(event)

    def _dispatch(self, raw: Mapping[str, Any]) -> None:
        event = parse(raw)
        if event is None:
            return
        key = event.labels.get(self._key_label)
        if key:
            self.notify(key, event)

    def _resync_all(self) -> None:
        for key in list(self._subscribers):
            self.notify(key, ContainerEvent(action=RESYNC, container_id="", labels={}))

    async def run(self) -> None:
        """Follow the events until cancelled, reconnecting whenever the stream breaks."""
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            connecting = asyncio.ensure_future(
                asyncio.to_thread(
                    calling,
                    "following Docker events",
                    lambda: self._client.api.events(
                        decode=True,
                        filters={"type": "container", "label": f"{LABEL_MANAGED}=true"},
                    ),
                )
            )
            try:
                stream = await asyncio.shield(connecting)
            except asyncio.CancelledError:
                # Cancelled while connecting: close the stream if it still arrives.
                connecting.add_done_callback(_close_arriving)
                raise
            except DockerError as e:
                delay = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
                failures += 1
                logger.warning(
                    "Docker events unavailable; retrying", extra={"error": str(e), "delay": delay}
                )
                await asyncio.sleep(delay)
                continue
            if failures:
                logger.info("Docker events reconnected; resyncing every container")
            failures = 0
            self.connected.set()
            self._resync_all()
            try:
                await asyncio.to_thread(self._pump, stream, loop)
            finally:
                self.connected.clear()
                _close(stream)
            failures += 1  # the stream ended: the engine went away

    def _pump(self, stream: Any, loop: asyncio.AbstractEventLoop) -> None:
        try:
            for raw in stream:
                loop.call_soon_threadsafe(self._dispatch, raw)
        except Exception as e:  # the stream breaks in many ways when dockerd stops
            logger.debug("Docker events stream ended", extra={"error": repr(e)})


def _close(stream: Any) -> None:
    """Close an events stream, also when the engine already broke it.

    docker-py's close() does nothing once urllib3 marks the response closed (the engine went
    away), which leaves the socket open; closing the response releases it.
    """
    with contextlib.suppress(Exception):
        stream.close()
    with contextlib.suppress(Exception):
        stream._response.close()


def _close_arriving(connecting: asyncio.Future[Any]) -> None:
    if not connecting.cancelled() and connecting.exception() is None:
        _close(connecting.result())
