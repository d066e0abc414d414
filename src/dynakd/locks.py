"""One exclusive lock per file, for processes sharing a folder (sweep shards, runs sharing a teacher cache).

``fcntl.flock`` by hand rather than the ``filelock`` package: the kernel drops the lock when its process dies (a
killed shard leaves no stale lock behind), and an unwritable folder fails at ``open`` where ``required=False`` can
catch it. POSIX only (Linux, macOS), like the rest of DynaKD's process handling."""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path


@contextlib.contextmanager
def locked(path: Path, *, required: bool = True):
    """An exclusive POSIX advisory lock on ``path`` (created if missing), held for the ``with`` block. On machines
    sharing a folder, the file system must support locks. ``required=False``: where the lock file cannot be written
    (a read-only folder), go on unlocked."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = path.open("w")
    except OSError:
        if required:
            raise
        yield
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
