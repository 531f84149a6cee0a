"""Workload handlers: kopf glue around :class:`~nodekeeper.workloads.supervisor.WorkloadSupervisor`.

- create / update(spec) / resume -> ``reconcile``: admit the spec, make sure its container exists;
- delete (finalizer) -> ``remove``: the container goes before the object does;
- a daemon per Workload -> ``monitor``: report what the container does, restart it, expire it.

The supervisor raises :class:`~nodekeeper.workloads.supervisor.RetryLater` and kube's errors;
this module turns them into kopf's TemporaryError and PermanentError.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import kopf

from nodekeeper.api import GROUP, VERSION
from nodekeeper.api.workload import KIND, PLURAL
from nodekeeper.handlers.context import AgentContext
from nodekeeper.handlers.ownership import is_foreign, is_own
from nodekeeper.handlers.writing import retrying_status_writes
from nodekeeper.workloads.supervisor import RetryLater


@asynccontextmanager
async def retrying() -> AsyncIterator[None]:
    async with retrying_status_writes():
        try:
            yield
        except RetryLater as e:
            raise kopf.TemporaryError(str(e), delay=e.delay) from e


async def reconcile(body: kopf.Body, memo: AgentContext, reason: str, **_: Any) -> None:
    async with retrying():
        await memo.workloads.reconcile(body, reason)


async def remove(body: kopf.Body, memo: AgentContext, **_: Any) -> None:
    async with retrying():
        await memo.workloads.remove(body)


async def monitor(
    body: kopf.Body, memo: AgentContext, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    async with retrying():
        await memo.workloads.monitor(body, stopped)


async def count_foreign(memo: AgentContext, **_: Any) -> None:
    memo.metrics.foreign_events.labels(kind=KIND).inc()


def register(registry: kopf.OperatorRegistry) -> None:
    resource = (GROUP, VERSION, PLURAL)
    kopf.on.resume(*resource, when=is_own, registry=registry, id="reconcile")(reconcile)
    kopf.on.create(*resource, when=is_own, registry=registry, id="reconcile")(reconcile)
    kopf.on.update(*resource, field="spec", when=is_own, registry=registry, id="reconcile")(
        reconcile
    )
    kopf.on.delete(*resource, when=is_own, registry=registry, id="remove")(remove)
    kopf.daemon(*resource, when=is_own, registry=registry, id="monitor", cancellation_timeout=2.0)(
        monitor
    )
    kopf.on.event(*resource, when=is_foreign, registry=registry, id="foreign")(count_foreign)
