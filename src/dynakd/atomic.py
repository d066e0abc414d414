"""Files written whole or not at all: into a temporary file beside the target, then renamed over it (a rename is
atomic on one file system). A full disk, a quota or a process killed mid-write leaves the earlier file as it was."""

from __future__ import annotations

import os
from pathlib import Path


def write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step; the temporary file goes on any failure."""
    # hidden and *.tmp: never published with a run (hub.PUSH_IGNORE); the process's own, so that two writers of one
    # file (two runs recording the same teacher's scores) do not write into each other's
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")  # (not the locale's: a C locale cannot write a non-ASCII answer)
        os.replace(tmp, path)
    except BaseException:  # a full disk, or Ctrl-C while writing
        tmp.unlink(missing_ok=True)
        raise
