"""A run's log as ordered, zstd-compressed chunks, each small enough for one ConfigMap.

A ConfigMap holds at most 1 MiB, and ``binaryData`` is base64 (4/3 of the bytes), so a chunk is
cut from at most :data:`RAW_CHUNK_BYTES` of log: zstd's worst case (incompressible input) then
stays under :data:`MAX_COMPRESSED_BYTES`, 512 KiB, about 683 KiB once encoded.

Over the cap, the middle of the log goes and a marker line says how much: the head shows how the
task started and the tail how it ended, which is what someone reading a failed run needs.
"""

import dataclasses
from collections.abc import Iterable
from typing import TypedDict

import zstandard

MAX_COMPRESSED_BYTES = 512 * 1024
RAW_CHUNK_BYTES = 448 * 1024
DEFAULT_CAP_BYTES = 8 * 1024 * 1024
LEVEL = 3


class LogInfo(TypedDict):
    """status.log of a BackupRun."""

    bytes: int
    chunks: int
    truncated: bool


@dataclasses.dataclass(frozen=True)
class Chunk:
    index: int
    data: bytes  # zstd-compressed


@dataclasses.dataclass(frozen=True)
class PreparedLog:
    """The log as it will be stored: what status.log says, and its chunks."""

    bytes: int  # stored (uncompressed) size, after truncation
    truncated: bool
    chunks: tuple[Chunk, ...]

    def info(self) -> LogInfo:
        return {"bytes": self.bytes, "chunks": len(self.chunks), "truncated": self.truncated}


def truncate(log: bytes, cap_bytes: int) -> tuple[bytes, bool]:
    """The log within ``cap_bytes``: head and tail kept, the middle replaced by a marker."""
    if len(log) <= cap_bytes:
        return log, False
    marker_template = "\n[nodekeeper: {} bytes cut from the middle of this log]\n"
    marker = marker_template.format(len(log)).encode()  # an upper bound on the marker's length
    keep = max(cap_bytes - len(marker), 0)
    head_size = keep // 2
    tail_size = keep - head_size
    cut = len(log) - head_size - tail_size
    marker = marker_template.format(cut).encode()
    tail = log[len(log) - tail_size :] if tail_size else b""
    return log[:head_size] + marker + tail, True


def prepare(log: bytes, *, cap_bytes: int = DEFAULT_CAP_BYTES) -> PreparedLog:
    kept, truncated = truncate(log, cap_bytes)
    compressor = zstandard.ZstdCompressor(level=LEVEL, write_content_size=True)
    chunks = []
    for index, start in enumerate(range(0, len(kept), RAW_CHUNK_BYTES)):
        data = compressor.compress(kept[start : start + RAW_CHUNK_BYTES])
        if len(data) > MAX_COMPRESSED_BYTES:  # zstd's bound makes this impossible; stay honest
            raise ValueError(f"chunk {index} compressed to {len(data)} bytes")
        chunks.append(Chunk(index=index, data=data))
    return PreparedLog(bytes=len(kept), truncated=truncated, chunks=tuple(chunks))


def reassemble(chunks: Iterable[Chunk]) -> bytes:
    """The stored log from its chunks, in index order, whatever order they arrive in."""
    decompressor = zstandard.ZstdDecompressor()
    ordered = sorted(chunks, key=lambda chunk: chunk.index)
    for expected, chunk in enumerate(ordered):
        if chunk.index != expected:
            raise ValueError(f"log chunk {expected} is missing")
    return b"".join(decompressor.decompress(chunk.data) for chunk in ordered)
