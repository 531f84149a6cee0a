"""A run's log in ConfigMaps ``<run>-log-<NNN>`` owned by the run, and read back in order.

Each chunk carries the run's name as a label (to find them) and, as annotations, its index and
the whole log's size, chunk count and truncation, so the chunks alone describe the log. Writes
are server-side applies: storing the same log again (after a restart) rewrites nothing new, and
chunks left over from a longer earlier attempt are deleted after the new ones are in place.
"""

from nodekeeper.api import API_VERSION
from nodekeeper.api.backuprun import KIND
from nodekeeper.api.names import (
    ANNOTATION_LOG_BYTES,
    ANNOTATION_LOG_CHUNKS,
    ANNOTATION_LOG_INDEX,
    ANNOTATION_LOG_TRUNCATED,
    LABEL_BACKUPRUN,
)
from nodekeeper.api.refs import ObjectRef
from nodekeeper.backups.logchunks import (
    DEFAULT_CAP_BYTES,
    Chunk,
    LogInfo,
    PreparedLog,
    prepare,
    reassemble,
)
from nodekeeper.kube.configmaps import BinaryConfigMap, ConfigMaps, Owner

DATA_KEY = "log.zst"
NAME_MAX = 253


def chunk_name(run_name: str, index: int) -> str:
    suffix = f"-log-{index:03d}"
    return run_name[: NAME_MAX - len(suffix)] + suffix


def label_value(run_name: str) -> str:
    # Label values are at most 63 characters and end alphanumeric; a longer run name is cut
    # (two runs cut to the same value are told apart by their owner uid).
    return run_name[:63].rstrip("-._")


def selector(run_name: str) -> str:
    return f"{LABEL_BACKUPRUN}={label_value(run_name)}"


def config_maps(run: ObjectRef, prepared: PreparedLog) -> list[BinaryConfigMap]:
    return [
        BinaryConfigMap(
            name=chunk_name(run.name, chunk.index),
            labels={LABEL_BACKUPRUN: label_value(run.name)},
            annotations={
                ANNOTATION_LOG_INDEX: str(chunk.index),
                ANNOTATION_LOG_CHUNKS: str(len(prepared.chunks)),
                ANNOTATION_LOG_BYTES: str(prepared.bytes),
                ANNOTATION_LOG_TRUNCATED: str(prepared.truncated).lower(),
            },
            binary_data={DATA_KEY: chunk.data},
        )
        for chunk in prepared.chunks
    ]


class RunLogs:
    def __init__(self, config_maps: ConfigMaps, *, cap_bytes: int = DEFAULT_CAP_BYTES) -> None:
        self._config_maps = config_maps
        self.cap_bytes = cap_bytes

    def prepare(self, log: bytes) -> PreparedLog:
        return prepare(log, cap_bytes=self.cap_bytes)

    async def store(self, run: ObjectRef, log: bytes | PreparedLog) -> PreparedLog:
        """Write the log's chunks (owned by the run); returns what status.log should say."""
        prepared = log if isinstance(log, PreparedLog) else self.prepare(log)
        owner = Owner(api_version=API_VERSION, kind=KIND, name=run.name, uid=run.uid)
        wanted = config_maps(run, prepared)
        for config_map in wanted:
            await self._config_maps.apply(run.namespace, config_map, owner)
        names = {config_map.name for config_map in wanted}
        for stale in await self._owned(run):
            if stale.name not in names:
                await self._config_maps.delete(run.namespace, stale.name)
        return prepared

    async def _owned(self, run: ObjectRef) -> list[BinaryConfigMap]:
        found = await self._config_maps.list(run.namespace, label_selector=selector(run.name))
        return [item for item in found if run.uid in item.owner_uids]

    async def stored(self, run: ObjectRef) -> tuple[list[Chunk], LogInfo | None]:
        """The run's chunks and the log info they declare (None when there are none)."""
        chunks: list[Chunk] = []
        info: LogInfo | None = None
        for item in await self._owned(run):
            try:
                index = int(item.annotations.get(ANNOTATION_LOG_INDEX, ""))
            except ValueError:
                continue
            if DATA_KEY not in item.binary_data:
                continue
            chunks.append(Chunk(index=index, data=item.binary_data[DATA_KEY]))
            info = LogInfo(
                bytes=int(item.annotations.get(ANNOTATION_LOG_BYTES, "0") or 0),
                chunks=int(item.annotations.get(ANNOTATION_LOG_CHUNKS, "0") or 0),
                truncated=item.annotations.get(ANNOTATION_LOG_TRUNCATED) == "true",
            )
        return sorted(chunks, key=lambda chunk: chunk.index), info

    async def load(self, run: ObjectRef) -> bytes:
        """The run's whole stored log; ValueError when a chunk is missing."""
        chunks, info = await self.stored(run)
        if info is not None and len(chunks) != info["chunks"]:
            raise ValueError(
                f"the log of {run.namespace}/{run.name} has {len(chunks)} of {info['chunks']} "
                "chunks; it is still being written or was damaged"
            )
        return reassemble(chunks)
