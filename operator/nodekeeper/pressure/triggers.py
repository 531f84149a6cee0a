"""PSI triggers: the kernel wakes the agent when stalls pass a threshold, instead of polling.

A trigger is a string written to a pressure file (``/proc/pressure/cpu`` or a cgroup v2
``cpu.pressure``): ``some 500000 2000000`` means "tell me when tasks stalled 500 ms within any
2 s window". The kernel then raises ``POLLPRI`` on that file descriptor. The descriptor is
always readable, so asyncio's ``add_reader`` (``EPOLLIN``) cannot watch it; instead a private
``epoll`` watches it for ``EPOLLPRI`` and the loop watches that epoll's descriptor, which becomes
readable exactly when the kernel wakes the trigger. No thread is involved.

Two kernel rules shape the writes (kernel/sched/psi.c):

- without ``CAP_SYS_RESOURCE`` (a pod's default) the window must be a multiple of 2 s; the
  kernel answers EINVAL (EPERM on kernels that refuse unprivileged triggers altogether).
  :func:`open_trigger` rounds the window up to the next multiple of 2 s and tries once more,
  and :attr:`PsiTrigger.window_us` says which window is in force;
- ``/proc/pressure/*`` overwrites the last byte of the write with NUL, so the string is always
  written NUL-terminated (cgroup files accept either).

Errors, all from this module::

    TriggerError
    ├── TriggerUnavailable   the file is missing or the kernel refused every window tried
    └── TriggerClosed        the trigger was closed, or its cgroup was removed
"""

import asyncio
import errno
import logging
import os
import select
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

logger = logging.getLogger(__name__)

Kind = Literal["some", "full"]

WINDOW_STEP_US = 2_000_000  # the unprivileged window granularity
WINDOW_MAX_US = 10_000_000  # the kernel's largest window


class TriggerError(Exception):
    """Base of every error this module raises."""


class TriggerUnavailable(TriggerError):
    """No trigger could be installed; sample periodically instead."""


class TriggerClosed(TriggerError):
    """The trigger is closed, or the cgroup it watched is gone."""


def round_window(window_us: int) -> int:
    """The next multiple of 2 s at or above ``window_us``: what an unprivileged writer may use."""
    return -(-window_us // WINDOW_STEP_US) * WINDOW_STEP_US


class PsiTrigger:
    """One installed trigger. ``await wait()`` returns each time the kernel fires it."""

    def __init__(
        self,
        path: Path,
        fd: int,
        *,
        kind: Kind,
        stall_us: int,
        window_us: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.path = path
        self.kind = kind
        self.stall_us = stall_us
        self.window_us = window_us  # the window in force, after any rounding
        self.fired_count = 0
        self._fd = fd
        self._loop = loop
        epoll = select.epoll()
        try:
            epoll.register(fd, select.EPOLLPRI)
        except OSError:
            epoll.close()
            raise
        self._epoll: select.epoll | None = epoll
        self._fired = asyncio.Event()
        self._gone = False
        loop.add_reader(epoll.fileno(), self._on_ready)

    @property
    def spec(self) -> str:
        return f"{self.kind} {self.stall_us} {self.window_us}"

    @property
    def closed(self) -> bool:
        return self._epoll is None

    def _on_ready(self) -> None:
        assert self._epoll is not None
        # The loop's own poll of our epoll already consumed the kernel's event flag, so the
        # list may be empty: readiness of this epoll is itself the signal. Draining keeps the
        # epoll from staying readable; EPOLLERR means the cgroup was removed.
        events = self._epoll.poll(0)
        if any(mask & select.EPOLLERR for _, mask in events):
            self._gone = True
            self._loop.remove_reader(self._epoll.fileno())
        else:
            self.fired_count += 1
        self._fired.set()

    async def wait(self) -> None:
        """Return when the trigger fires (at most once per window, by the kernel's rate limit)."""
        if self.closed:
            raise TriggerClosed(f"trigger on {self.path} is closed")
        await self._fired.wait()
        self._fired.clear()
        if self._gone:
            raise TriggerClosed(f"{self.path} went away (its cgroup was removed)")
        if self.closed:
            raise TriggerClosed(f"trigger on {self.path} was closed while waiting")

    def close(self) -> None:
        if self._epoll is None:
            return
        epoll, self._epoll = self._epoll, None
        if not self._gone:
            self._loop.remove_reader(epoll.fileno())
        epoll.close()
        os.close(self._fd)
        self._fired.set()  # wake a waiter, which then sees the trigger closed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PsiTrigger {self.path} {self.spec!r}>"


def open_trigger(path: Path, *, stall_us: int, window_us: int, kind: Kind = "some") -> PsiTrigger:
    """Install a trigger on ``path`` within the running loop; see the module docstring."""
    if not 0 < stall_us <= window_us:
        raise ValueError(f"stall {stall_us} us must be positive and at most the window")
    loop = asyncio.get_running_loop()
    windows = [window_us]
    rounded = round_window(window_us)
    if rounded != window_us and rounded <= WINDOW_MAX_US:
        windows.append(rounded)
    refused: OSError | None = None
    for window in windows:
        fd = _install(path, f"{kind} {stall_us} {window}")
        if isinstance(fd, OSError):
            refused = fd
            continue
        if window != window_us:
            logger.info(
                "PSI trigger window rounded up",
                extra={"path": str(path), "requested_us": window_us, "window_us": window},
            )
        try:
            return PsiTrigger(path, fd, kind=kind, stall_us=stall_us, window_us=window, loop=loop)
        except OSError as e:  # epoll refuses files that cannot signal, e.g. a regular file
            os.close(fd)
            raise TriggerUnavailable(f"cannot watch {path} for PSI events: {e}") from e
    tried = ", ".join(f"{kind} {stall_us} {w}" for w in windows)
    raise TriggerUnavailable(
        f"the kernel refused a PSI trigger on {path} ({tried}): {refused}"
    ) from refused


def _install(path: Path, spec: str) -> int | OSError:
    """An fd with the trigger installed, or the kernel's refusal of ``spec``."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise TriggerUnavailable(f"cannot open {path} for a PSI trigger: {e}") from e
    try:
        os.write(fd, spec.encode() + b"\0")
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EINVAL, errno.EPERM):
            return e
        raise TriggerUnavailable(f"cannot install PSI trigger {spec!r} on {path}: {e}") from e
    return fd
