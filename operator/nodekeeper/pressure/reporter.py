"""Node pressure, reported: PSI transitions become Node conditions, Events and log lines.

The sampler decides transitions; this module only reports them. Every patch carries
all three Nodekeeper*Pressure conditions, so the Node always shows the agent's whole view, and a
heartbeat re-sends them every ``heartbeat_seconds`` so ``lastHeartbeatTime`` tells a live agent
from a dead one (``lastTransitionTime`` moves only on a status change; kube/nodes.py keeps it).
A failed patch is logged and retried by the next heartbeat; sampling never stops for it.
"""

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

from nodekeeper.kube.errors import KubeError
from nodekeeper.kube.nodes import NodeCondition
from nodekeeper.kube.protocols import EventPoster, NodeConditionPatcher
from nodekeeper.pressure.psi import RESOURCES
from nodekeeper.pressure.sampler import PressureSampler
from nodekeeper.pressure.thresholds import PressureTracker, Transition
from nodekeeper.pressure.triggers import PsiTrigger, TriggerError, open_trigger

logger = logging.getLogger(__name__)


class NodePressure:
    def __init__(
        self,
        *,
        sampler: PressureSampler,
        tracker: PressureTracker,
        writer: NodeConditionPatcher,
        events: EventPoster,
        heartbeat_seconds: float,
        pressure_root: Path,
        trigger_stall_us: int,
        trigger_window_us: int,
    ) -> None:
        self._sampler = sampler
        self._tracker = tracker
        self._writer = writer
        self._events = events
        self._heartbeat_seconds = heartbeat_seconds
        self._pressure_root = pressure_root
        self._stall_us = trigger_stall_us
        self._window_us = trigger_window_us
        self.triggers: list[PsiTrigger] = []
        self._sending = asyncio.Lock()

    def conditions(self) -> list[NodeCondition]:
        return [
            NodeCondition(state.type, state.status, state.reason, state.message)
            for state in self._tracker.states()
        ]

    async def send(self) -> bool:
        # One patch at a time, the snapshot taken inside: a heartbeat begun before a transition
        # must not land after it with the old status.
        async with self._sending:
            return await self._send()

    async def _send(self) -> bool:
        try:
            await self._writer.patch(self.conditions())
        except KubeError as e:
            logger.warning("node condition patch failed; retrying", extra={"error": str(e)})
            return False
        return True

    async def report(self, transitions: Sequence[Transition]) -> None:
        await self.send()
        for transition in transitions:
            current = transition.current
            # Pressure, and not knowing (no PSI), are worth a look; only False is all clear.
            calm = current.status == "False"
            level = logging.INFO if calm else logging.WARNING
            logger.log(
                level,
                "node condition changed",
                extra={"condition": current.type, "status": current.status, "why": current.message},
            )
            with contextlib.suppress(KubeError):
                await self._events.post(
                    type="Normal" if calm else "Warning",
                    reason=current.reason,
                    message=f"{current.type}={current.status}: {current.message}",
                )

    def _open_triggers(self) -> None:
        if not self._stall_us:
            return
        for resource in RESOURCES:
            try:
                trigger = open_trigger(
                    self._pressure_root / resource,
                    stall_us=self._stall_us,
                    window_us=self._window_us,
                )
            except TriggerError as e:
                logger.info(
                    "no PSI trigger; sampling periodically",
                    extra={"resource": resource, "error": str(e)},
                )
                continue
            self.triggers.append(trigger)
        if self.triggers:
            logger.info(
                "PSI triggers armed",
                extra={"window_us": self.triggers[0].window_us, "spec": self.triggers[0].spec},
            )

    async def run(self) -> None:
        """Sample, report and beat until cancelled."""
        heartbeat: asyncio.Task[None] | None = None
        try:
            self._open_triggers()
            # The first sample moves every condition out of NotYetSampled: reported like any
            # transition, with an Event each, as the kubelet posts NodeHasSufficientMemory & co.
            # on every start.
            await self.report(self._sampler.evaluate())
            heartbeat = asyncio.create_task(self._beat(), name="node heartbeat")
            await self._sampler.run(self.report, wakeups=self.triggers)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            for trigger in self.triggers:
                trigger.close()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_seconds)
            await self.send()
