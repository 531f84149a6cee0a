"""Missing kernel files are reported once, not on every sample.

A kernel without PSI, a cgroup v1 host without ``memory.events``, a container whose cgroup is
gone: these are states of the machine, not errors, and a sampler that runs every few seconds
would otherwise repeat the same warning forever. One warning says what is missing and what the
agent does instead; when the file comes back, one info line says so.
"""

import logging
from collections.abc import Hashable
from pathlib import Path


class AbsenceLog:
    """Remembers which things were reported missing, so each is reported once."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._missing: set[Hashable] = set()

    def missing(
        self, key: Hashable, path: Path, *, what: str, error: OSError | None = None
    ) -> None:
        if key in self._missing:
            return
        self._missing.add(key)
        reason = error.strerror if error is not None and error.strerror else "missing"
        self._logger.warning(
            "%s unavailable: %s (%s); reported as unknown",
            what,
            path,
            reason,
            extra={"path": str(path), "what": what, "reason": reason},
        )

    def present(self, key: Hashable, path: Path, *, what: str) -> None:
        if key not in self._missing:
            return
        self._missing.discard(key)
        self._logger.info(
            "%s available again: %s", what, path, extra={"path": str(path), "what": what}
        )
