"""Every container's log, read without losing a line, into a local store that is the buffer.

A line's way (docs/architecture.md draws it): ``watcher`` (one inotify instance, paced) says which
containers changed; ``discovery`` reads their config; ``rules`` decides which to follow;
``follower`` reads appended bytes across rotation (``files``: identity, ``.N``, ``.N.gz``) and
``parsing`` splits and merges json-file records; ``streamed`` reads local/journald containers
through the Docker API; ``pipeline`` batches and hands them to ``store`` (SQLite, a zstd block
and its checkpoint in one transaction). Readers of the store never touch the writing side:
``query`` (``nodekeeper logs``, the log API, and ``committed_blocks``, the seam a sink ships
from) and ``readback`` (a finished BackupRun task's whole log).
"""
