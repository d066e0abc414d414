"""What produced a result: the DynaKD source (its git commit, where it runs from a DynaKD checkout) and the versions
of the libraries that shape a run. Written into every ``metrics.json`` (so a sweep's ``results.jsonl``) and every
bench JSON: a number is reported with the code that made it."""

from __future__ import annotations

import contextlib
import functools
import platform
import subprocess
from pathlib import Path


@functools.cache  # (once a process: a sweep writes many records)
def source_commit() -> str | None:
    """The git commit of the DynaKD source running, ``-dirty`` with changes not committed, where it runs from a DynaKD
    checkout (None otherwise: an installed copy inside a project of one's own is not that project's commit)."""
    package = Path(__file__).resolve().parent  # src/dynakd

    def git(*args: str) -> str | None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(["git", "-C", str(package), *args], capture_output=True, text=True, timeout=10)
            return out.stdout.strip() if out.returncode == 0 else None
        return None

    top = git("rev-parse", "--show-toplevel")
    if not top or Path(top).resolve() / "src" / "dynakd" != package:
        return None
    commit = git("rev-parse", "--short", "HEAD")
    return commit and commit + ("-dirty" if git("status", "--porcelain", "--", ":/src") else "")


def versions() -> dict[str, str | None]:
    """DynaKD's version and commit, and the versions of Python, torch and transformers."""
    import torch
    import transformers

    from . import __version__

    return {"dynakd": __version__, "commit": source_commit(), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__}
