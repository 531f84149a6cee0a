"""Docker json-file log files: which file is which, across renames, compression and inode reuse.

dockerd rotates ``<id>-json.log`` by renaming ``.N-1`` -> ``.N`` ... live -> ``.1`` (deleting the
file beyond ``max-file``) and creating a new live file; with ``compress=true`` a rotated file
becomes ``.1.gz`` (a new inode) shortly after. A path therefore says nothing about which file it
holds. A file is known by its identity (device, inode) *and* its first bytes: an inode freed by a
deletion is soon given to a new file, and the first bytes of a json-file log carry a nanosecond
timestamp, so they tell the new file from the old. A compressed file has a new inode, so it is
known by its decompressed first bytes alone.

Everything here is synchronous and reads bounded amounts: the follower calls it on the event
loop for page-cached files.
"""

import dataclasses
import os
import struct
import zlib
from pathlib import Path

from nodekeeper.logs.records import FINGERPRINT_BYTES, FilePosition

GZIP_SUFFIX = ".gz"
_GZIP_INPUT_BYTES = 64 * 1024

FileIdentity = tuple[int, int]  # (device, inode)


def identity(target: int | str | os.PathLike[str]) -> FileIdentity:
    """(device, inode) of an open fd or a path (raises FileNotFoundError for a missing path)."""
    stat = os.fstat(target) if isinstance(target, int) else os.stat(target)
    return stat.st_dev, stat.st_ino


def fingerprint(fd: int, *, compressed: bool = False) -> bytes:
    """The first FINGERPRINT_BYTES bytes of the file (decompressed for a gzip file)."""
    if compressed:
        return Gunzip(fd).pread(FINGERPRINT_BYTES, 0)
    return os.pread(fd, FINGERPRINT_BYTES, 0)


def matches(position: FilePosition, fd: int, *, compressed: bool = False) -> bool:
    """Whether `fd` is the file `position` names.

    A plain file must have the same device and inode and start with the stored fingerprint (the
    file may have grown past a short fingerprint since). A gzip file is the compressed copy of a
    plain one, so only its decompressed first bytes can tell; an empty fingerprint proves nothing
    there and never matches.
    """
    stored = position.fingerprint
    if compressed:
        return bool(stored) and Gunzip(fd).pread(len(stored), 0) == stored
    if identity(fd) != (position.device, position.inode):
        return False
    return os.pread(fd, len(stored), 0) == stored


def rotated_path(log_path: str | os.PathLike[str], index: int, *, compressed: bool = False) -> Path:
    """``<log>`` for index 0, ``<log>.N`` (or ``<log>.N.gz``) for the N-th rotated file."""
    base = os.fspath(log_path)
    if index == 0:
        return Path(base)
    return Path(f"{base}.{index}{GZIP_SUFFIX if compressed else ''}")


class Gunzip:
    """Random-looking reads of a gzip file's decompressed bytes, done as one forward stream.

    Readers re-read the unfinished tail of their last read, so the last piece handed out is kept
    and served again; reading before it restarts decompression (never needed by the follower).
    Memory stays at about the size of the reads asked for. A corrupt or cut-short stream reads as
    its end: `damaged` tells that apart.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.damaged = False
        self._restart()

    def _restart(self) -> None:
        self._inflater = zlib.decompressobj(wbits=31)
        self._input_offset = 0
        self._kept = b""
        self._kept_offset = 0
        self.ended = False

    @property
    def produced(self) -> int:
        """Decompressed bytes produced so far: the exact size once `ended`."""
        return self._kept_offset + len(self._kept)

    def pread(self, length: int, offset: int) -> bytes:
        if offset < self._kept_offset:
            self._restart()
        end = offset + length
        self._forget_before(offset)
        while self.produced < end and not self.ended:
            self._produce(end - self.produced)
            self._forget_before(offset)
        if self._kept_offset != offset:
            return b""  # the stream ends before `offset`
        return self._kept[:length]

    def _forget_before(self, offset: int) -> None:
        if self.produced <= offset:
            self._kept_offset, self._kept = self.produced, b""
        elif offset > self._kept_offset:
            self._kept = self._kept[offset - self._kept_offset :]
            self._kept_offset = offset

    def _produce(self, wanted: int) -> None:
        source = self._inflater.unconsumed_tail
        if not source:
            source = os.pread(self._fd, _GZIP_INPUT_BYTES, self._input_offset)
            self._input_offset += len(source)
            if not source:
                self.ended = True
                self.damaged = not self._inflater.eof
                return
        try:
            piece = self._inflater.decompress(source, wanted)
        except zlib.error:
            self.ended = True
            self.damaged = True
            return
        self._kept += piece
        if self._inflater.eof:
            self.ended = True


@dataclasses.dataclass
class LogFile:
    """One open file of a container's log chain; the open fd keeps its bytes after deletion."""

    path: str  # where it was opened (dockerd may have renamed or deleted it since)
    fd: int
    device: int
    inode: int
    compressed: bool
    _gunzip: Gunzip | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> "LogFile | None":
        """Open `path`, or None when it does not exist (any more)."""
        name = os.fspath(path)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            device, inode = identity(fd)
        except BaseException:
            os.close(fd)
            raise
        compressed = name.endswith(GZIP_SUFFIX)
        return cls(
            path=name,
            fd=fd,
            device=device,
            inode=inode,
            compressed=compressed,
            _gunzip=Gunzip(fd) if compressed else None,
        )

    @property
    def identity(self) -> FileIdentity:
        return self.device, self.inode

    def size(self) -> int:
        """Bytes in the file as read (decompressed for gzip: exact once read to the end, else
        the size the gzip trailer states, modulo 4 GiB)."""
        if self._gunzip is None:
            return os.fstat(self.fd).st_size
        if self._gunzip.ended:
            return self._gunzip.produced
        stored = os.fstat(self.fd).st_size
        if stored < 18:  # smaller than an empty gzip member: being written or cut short
            return 0
        (trailer_size,) = struct.unpack("<I", os.pread(self.fd, 4, stored - 4))
        return int(trailer_size)

    def pread(self, length: int, offset: int) -> bytes:
        if self._gunzip is None:
            return os.pread(self.fd, length, offset)
        return self._gunzip.pread(length, offset)

    @property
    def ended(self) -> bool:
        """A gzip stream read to its end (its size is exact now); always False for plain files."""
        return self._gunzip is not None and self._gunzip.ended

    @property
    def damaged(self) -> bool:
        return self._gunzip is not None and self._gunzip.damaged

    def fingerprint(self) -> bytes:
        return self.pread(FINGERPRINT_BYTES, 0)

    def matches(self, position: FilePosition) -> bool:
        stored = position.fingerprint
        if self.compressed:
            return bool(stored) and self.pread(len(stored), 0) == stored
        if self.identity != (position.device, position.inode):
            return False
        return self.pread(len(stored), 0) == stored

    def same_file(self, other: "LogFile", other_fingerprint: bytes) -> bool:
        """Whether this is `other` (known by `other_fingerprint`), or its compressed copy."""
        if not self.compressed and not other.compressed:
            return self.identity == other.identity
        if not other_fingerprint:
            return False
        return self.pread(len(other_fingerprint), 0) == other_fingerprint

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
