"""One exclusive lock per file, for processes sharing a folder (sweep shards, runs sharing a teacher cache, two starts
of one run).

``fcntl.flock`` by hand rather than the ``filelock`` package: the kernel drops the lock when its process dies (a
killed shard leaves no stale lock behind), and an unwritable folder fails at ``open`` where ``required=False`` can
catch it. POSIX only (Linux, macOS), like the rest of DynaKD's process handling."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Callable
from pathlib import Path

from .errors import DynaKDError
from .notes import say, tell

# what going on unlocked may lead to, each said once a process (a sweep asks for many locks and trains many runs)
_said_unlocked: set[str] = set()


@contextlib.contextmanager
def locked(path: Path, *, required: bool = True, waiting: str | None = None):
    """An exclusive POSIX advisory lock on ``path`` (created if missing), held for the ``with`` block. On machines
    sharing a folder, the file system must support locks. ``required=False``: where the lock file cannot be written
    (a read-only folder) or the file system takes no locks, go on unlocked. ``waiting``: what to say when another
    process holds the lock (a wait of minutes said nothing)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = path.open("w")
    except OSError:
        if required:
            raise
        yield
        return
    with f:
        if not _lock(f, path, required, waiting):
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def exclusive(path: Path, refuse: Callable[[str], str], unlocked: str):
    """An exclusive lock on ``path`` for the ``with`` block, taken without waiting: where another process holds it, a
    DynaKDError saying ``refuse(who)``, ``who`` the holder as the file records it ("process 123 on node7"). The file
    is removed at the end. Where the file cannot be written or its file system takes no locks, goes on unlocked,
    noting once a process what may come of it (``unlocked``). Yields whether it holds the lock."""
    f = _own(path, refuse, unlocked)
    if f is None:
        yield False
        return
    with f:
        try:
            f.truncate(0)
            f.write(f"{os.getpid()} {socket.gethostname()}\n")
            f.flush()
            yield True
        finally:
            with contextlib.suppress(OSError):  # (a start that opened it meanwhile finds it gone once it has the lock)
                path.unlink()
            fcntl.flock(f, fcntl.LOCK_UN)


def _own(path: Path, refuse: Callable[[str], str], unlocked: str):
    """``path`` opened and locked, or None where it cannot be. Locked is the file found at ``path`` afterwards too:
    one a holder removed as it let go guards nothing."""
    while True:
        made = not path.exists()
        try:
            f = path.open("a+")  # (not "w": that would empty the holder's record before asking)
        except OSError as e:
            reason = _reason(e)
            break
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            pid, host = (f.read().split() + ["", ""])[:2]
            f.close()
            raise DynaKDError(refuse(f"process {pid} on {host}" if pid else "another process")) from None
        except OSError as e:  # a file system without locks: the file made for one guards nothing, and goes
            f.close()
            if made:
                path.unlink(missing_ok=True)
            reason = _reason(e)
            break
        if _still_there(f, path):
            return f
        f.close()
    _note_unlocked(path, reason, unlocked)
    return None


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def _note_unlocked(path: Path, reason: str, consequence: str) -> None:
    """Say, once a process for each ``consequence``, that a lock could not be taken and what may come of it."""
    if consequence not in _said_unlocked:
        _said_unlocked.add(consequence)
        say(f"cannot lock {path} ({reason}); going on without the lock ({consequence})")


def _still_there(f, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(f.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def held(path: Path) -> bool:
    """Whether some process holds the lock on ``path`` now (True also where that cannot be told: no such lock can be
    taken here, so a caller that would delete what the lock guards leaves it alone)."""
    try:
        with path.open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(f, fcntl.LOCK_UN)
            return False
    except OSError:  # held (EWOULDBLOCK), or a file system without locks
        return True


def _lock(f, path: Path, required: bool, waiting: str | None = None) -> bool:
    """Take the lock on open file ``f`` (saying ``waiting`` first if another process holds it); False where its file
    system takes none and ``required=False`` lets the caller go on unlocked (an NFS mount without its lock service
    answers ENOLCK, Lustre without ``flock`` ENOSYS; NFS mounted ``nolock`` takes locks, each machine its own)."""
    try:
        if waiting is not None:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:  # held: say so, then wait
                tell(f"{waiting} (lock {path})")
        fcntl.flock(f, fcntl.LOCK_EX)
        return True
    except BrokenPipeError:  # (the waiting line's output closed early: the command's end, no lock's failure)
        raise
    except OSError as e:
        reason = _reason(e)
    if required:
        raise DynaKDError(f"cannot lock {path} ({reason}: its file system may take no locks, as NFS without its "
                          "lock service or Lustre without flock do); put the folder on a file system that takes them")
    _note_unlocked(path, reason, "processes sharing its folder may each do the work it guards, e.g. build the "
                   "teacher cache")
    return False
