"""Missing or malformed kernel files are reported once, not on every sample.

A kernel without PSI, a cgroup v1 host without ``memory.events``, a container whose cgroup is
gone: these are states of the machine, not errors, and a sampler that runs every few seconds
would otherwise repeat the same warning forever. One warning says what is missing and what the
agent does instead; when the file comes back, one info line says so.

A file whose content cannot be parsed (garbage, a truncated line, a word where a number belongs)
is treated the same way: its figures are unknown, one warning says which file and what was wrong,
and nothing raises, so a sampler or the agent's self-watch never dies of it. Unlike a missing
file, every malformed read is also counted (:attr:`AbsenceLog.malformed_reads`), so that a
metric shows a reader that keeps failing after its one warning.
"""

import logging
import threading
from collections.abc import Hashable
from pathlib import Path
from typing import Literal

_State = Literal["missing", "malformed"]


class AbsenceLog:
    """Remembers which things were reported missing or malformed, so each is reported once.

    Thread-safe: one cgroup reader serves the event loop (self-protection) and the Workload
    usage sampler's thread."""

    def __init__(self, logger: logging.Logger) -> None:
        self._lock = threading.Lock()
        self._logger = logger
        self._reported: dict[Hashable, _State] = {}
        self.malformed_reads = 0  # every read that found content it could not parse

    def missing(
        self, key: Hashable, path: Path, *, what: str, error: OSError | None = None
    ) -> None:
        with self._lock:
            if self._reported.get(key) == "missing":
                return
            self._reported[key] = "missing"
        reason = error.strerror if error is not None and error.strerror else "missing"
        self._logger.warning(
            "%s unavailable: %s (%s); reported as unknown",
            what,
            path,
            reason,
            extra={"path": str(path), "what": what, "reason": reason},
        )

    def malformed(self, key: Hashable, path: Path, *, what: str, problem: str) -> None:
        """``path`` was read but its content makes no sense; ``problem`` says why."""
        with self._lock:
            self.malformed_reads += 1
            if self._reported.get(key) == "malformed":
                return
            self._reported[key] = "malformed"
        problem = problem.removeprefix(f"{path}: ")  # parse errors name the file; say it once
        self._logger.warning(
            "%s malformed: %s (%s); reported as unknown",
            what,
            path,
            problem,
            extra={"path": str(path), "what": what, "reason": problem},
        )

    def present(self, key: Hashable, path: Path, *, what: str) -> None:
        with self._lock:
            if self._reported.pop(key, None) is None:
                return
        self._logger.info(
            "%s available again: %s", what, path, extra={"path": str(path), "what": what}
        )
