"""Progress bars left open when a run stops (an interrupt, an error): each closed, ending its line. Light: the
command line's error path uses it without importing the libraries."""

from __future__ import annotations

import contextlib
import sys


def open_bars() -> set:
    """The progress bars open now (tqdm's, the Trainer's)."""
    return set(getattr(getattr(sys.modules.get("tqdm"), "tqdm", None), "_instances", ()))


def close_progress_bars(keep: set = frozenset()) -> None:
    """Close the progress bars left open but those in ``keep`` (a caller's own, open before the run), each ending its
    line: a last word was written on the bar's line, and the bar drawn again below it as the process ended (a
    notebook's next run drew below it)."""
    for bar in open_bars() - keep:
        with contextlib.suppress(Exception):  # (a bar whose stream is gone: the word matters more)
            bar.close()
