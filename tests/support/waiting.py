"""Waiting for what a test cannot be notified of: a metric, a file, an object on a real API
server. A hang guard, never a timing assertion: ``seconds`` bounds a wait that normally ends
long before it, and a timeout fails with what did not happen.

One signature, ``(check, *, what, seconds, every)``, twice: ``await eventually(...)`` in async
tests, on the loop's clock (so ``looptime`` applies), and ``eventually_sync(...)`` in sync tests
and benchmarks, on the monotonic clock. Both return the first truthy value ``check()`` gave,
so a check can hand back what it found; the async one also awaits a check that is a coroutine
function (one that asks a server, or a blocking call run with ``asyncio.to_thread``).
"""

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# Short against the waits, long enough that a check calling kubectl does not load the machine.
EVERY_SECONDS = 0.1


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    *,
    what: str,
    seconds: float,
    every: float = EVERY_SECONDS,
) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        value = check()
        if inspect.isawaitable(value):  # bounded too: a check that hangs is a timeout
            remaining = max(deadline - loop.time(), every)
            try:
                value = await asyncio.wait_for(value, remaining)
            except TimeoutError:
                raise _not_within(what, seconds, "a check that did not return") from None
        if value:
            return value
        if loop.time() >= deadline:
            raise _not_within(what, seconds, value)
        await asyncio.sleep(every)


def eventually_sync(
    check: Callable[[], T], *, what: str, seconds: float, every: float = EVERY_SECONDS
) -> T:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _not_within(what, seconds, value)
        time.sleep(every)


def _not_within(what: str, seconds: float, value: object) -> AssertionError:
    return AssertionError(f"{what}: did not happen within {seconds:g} s (last: {value!r:.300})")
