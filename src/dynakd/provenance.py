"""What produced a result: the DynaKD source (its git commit, where it runs from a DynaKD checkout) and the versions
of the libraries that shape a run. Written into every ``metrics.json`` (so a sweep's ``results.jsonl``) and every
bench JSON: a number is reported with the code that made it."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import platform
import subprocess
from pathlib import Path


@functools.cache  # (once a process: a sweep writes many records)
def source_commit() -> str | None:
    """The git commit of the DynaKD source running, ``-dirty`` with changes not committed, where it runs from a DynaKD
    checkout (None otherwise: an installed copy inside a project of one's own is not that project's commit)."""
    if not _checkout():
        return None
    commit = _git("rev-parse", "--short", "HEAD")
    return commit and commit + ("-dirty" if _git("status", "--porcelain", "--", ":/src") else "")


def _git(*args: str) -> str | None:
    """``git``'s answer about this source's checkout, or None where it has none (or no git)."""
    package = Path(__file__).resolve().parent  # src/dynakd
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["git", "-C", str(package), *args], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    return None


def _checkout() -> bool:
    """Whether this source is a DynaKD checkout's ``src/dynakd`` (not a copy installed inside another project)."""
    top = _git("rev-parse", "--show-toplevel")
    return bool(top) and Path(top).resolve() / "src" / "dynakd" == Path(__file__).resolve().parent


@functools.cache
def source_changes() -> str | None:
    """A hash of the changes to the DynaKD source not committed (``git diff`` of ``src``, and its files git does not
    track yet), where a ``-dirty`` commit runs: what a record keyed by the commit alone could not tell apart. None
    where the source is a commit's (or no checkout's)."""
    if not (source_commit() or "").endswith("-dirty"):
        return None
    h = hashlib.sha256((_git("diff", "HEAD", "--", ":/src") or "").encode())
    top = Path(_git("rev-parse", "--show-toplevel") or ".")
    # (--full-name: from the top, where the files are read; git answers from the package folder it runs in, and the
    # files were not found, their contents left out of the hash without a word)
    untracked = _git("ls-files", "--others", "--exclude-standard", "--full-name", "--", ":/src") or ""
    for name in sorted(untracked.splitlines()):
        h.update(name.encode())
        with contextlib.suppress(OSError):
            h.update((top / name).read_bytes())
    return h.hexdigest()[:16]


def versions() -> dict[str, str | None]:
    """DynaKD's version and commit, and the versions of Python, torch and transformers."""
    import torch
    import transformers

    from . import __version__

    return {"dynakd": __version__, "commit": source_commit(), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__}
