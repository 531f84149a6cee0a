"""A finished container's whole log, read back from the store once the pipeline has drained it.

BackupRuns keep their task's log in ConfigMaps; this is where that log comes from. A container the
pipeline does not follow (excluded by a rule, or a driver without a file) is read through
Docker's API instead, so the answer never depends on the rules.
"""

import asyncio
from pathlib import Path

from nodekeeper.logs.pipeline import LogPipeline
from nodekeeper.logs.query import MAX_LIMIT, LogQuery, run_query
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
        return await asyncio.to_thread(self._read, container_id)

    def _read(self, container_id: str) -> bytes:
        parts: list[str] = []
        query = LogQuery(container=container_id, limit=MAX_LIMIT)
        while True:
            page = run_query(self._store_path, query)
            parts.extend(line.log for line in page.lines)
            if page.next_cursor is None:
                return "".join(parts).encode()
            query = LogQuery(container=container_id, limit=MAX_LIMIT, cursor=page.next_cursor)
