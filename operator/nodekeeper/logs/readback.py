"""A finished container's whole log, read back from the store once the pipeline has drained it.

BackupRuns keep their task's log in ConfigMaps; this is where that log comes from. A container the
pipeline does not follow (excluded by a rule, or a driver without a file) is read through
Docker's API instead, so the answer never depends on the rules.
"""

import asyncio
from pathlib import Path

from nodekeeper.logs.pipeline import LogPipeline
from nodekeeper.logs.query import container_lines
from nodekeeper.runtime.logstream import ContainerLogs


class StoredLogs:
    def __init__(
        self,
        pipeline: LogPipeline,
        store_path: Path,
        fallback: ContainerLogs,
        *,
        drain_timeout_seconds: float,
    ) -> None:
        self._pipeline = pipeline
        self._store_path = store_path
        self._fallback = fallback
        self._drain_timeout = drain_timeout_seconds

    async def read_bytes(self, container_id: str) -> bytes:
        """The log as stored, stdout and stderr in Docker's order (call once it has exited)."""
        drained = await self._pipeline.drain(container_id, self._drain_timeout)
        if not drained or not self._pipeline.following(container_id):
            return await self._fallback.read_bytes(container_id)
        lines = await asyncio.to_thread(container_lines, self._store_path, container_id)
        return "".join(line.log for line in lines).encode()
