"""The shapes every stage of the log pipeline hands to the next.

    discovery -> ContainerInfo
    follower  -> Batch (stored records + the Checkpoint that produced them)
    store     -> one transaction per group of Batches; Checkpoints come back after a restart
    query     -> StoredLine

A stored record is one JSON object a line, Docker's own json-file shape
(``{"log": ..., "stream": ..., "time": ...}``) kept as Docker wrote it whenever possible, so the
hot path never re-encodes a line. A record the agent had to change carries ``"nk"``, a bitmask of
:class:`Flag`: merged from 16 KiB partials, truncated at ``log_max_line_bytes``, or malformed
(kept raw, decoded with backslash escapes, stream ``unknown``, time of reading).
"""

import dataclasses
import enum
from collections.abc import Mapping

from nodekeeper.api.names import LABEL_NAME, LABEL_NAMESPACE, LABEL_WORKLOAD_UID


class Flag(enum.IntFlag):
    MERGED = 1  # joined from Docker's 16 KiB partial records
    TRUNCATED = 2  # longer than log_max_line_bytes: the head is kept
    MALFORMED = 4  # not a json-file record: kept raw


@dataclasses.dataclass(frozen=True)
class ContainerInfo:
    """What discovery learns about a container from config.v2.json and hostconfig.json."""

    id: str
    name: str
    image: str
    labels: Mapping[str, str]
    log_driver: str  # json-file is tailed; anything else is read through the Docker API
    log_path: str  # empty when the driver keeps no file
    max_files: int = 1  # json-file max-file (1: no rotation)
    max_size_bytes: int = 0  # json-file max-size (0: unlimited, the file never rotates)
    compress: bool = False  # json-file compress=true: rotated files end in .gz
    running: bool = True  # State.Running when the config was read (dockerd rewrites it on change)

    @property
    def namespace(self) -> str:
        return self.labels.get("io.kubernetes.pod.namespace", "") or self.labels.get(
            LABEL_NAMESPACE, ""
        )

    @property
    def pod(self) -> str:
        return self.labels.get("io.kubernetes.pod.name", "")

    @property
    def workload(self) -> str:
        """The Workload's name; empty for other containers (BackupRun tasks included)."""
        if LABEL_WORKLOAD_UID not in self.labels:
            return ""
        return self.labels.get(LABEL_NAME, "")


@dataclasses.dataclass(frozen=True)
class FilePosition:
    """A log file by identity, and how far into it the stored records reach."""

    path: str  # where it was last seen (it may have been renamed since)
    device: int
    inode: int
    fingerprint: bytes  # its first bytes (up to FINGERPRINT_BYTES): inode reuse is not identity
    offset: int
    final_size: int | None = None  # known once rotated away: Docker writes no more to it


FINGERPRINT_BYTES = 256


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """Where reading of one container's log resumes; committed with the records before it."""

    container_id: str
    position: FilePosition
    pending: Mapping[str, bytes] = dataclasses.field(default_factory=dict)
    # stream -> the merged text of a line whose partials are not all read yet (bounded)
    newer: tuple[FilePosition, ...] = ()  # files rotated in after `position`, oldest first


@dataclasses.dataclass(frozen=True)
class Batch:
    """Records read from one container's log, ready to store with their checkpoint."""

    container_id: str
    records: list[bytes]  # stored records, each one JSON object without its newline
    first_ns: int  # Docker time of the first and last record (0 when there is none)
    last_ns: int
    read_bytes: int  # file bytes consumed to produce them
    checkpoint: Checkpoint

    @property
    def lines(self) -> int:
        return len(self.records)


@dataclasses.dataclass(frozen=True)
class StoredLine:
    """One line as a query returns it."""

    container_id: str
    container_name: str
    stream: str
    time: str  # RFC 3339 as Docker wrote it
    log: str  # the text, with its newline when it had one
    flags: Flag
    cursor: str  # resume a query after this line
