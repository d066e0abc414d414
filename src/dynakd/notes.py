"""DynaKD's notes (``note: ...``: what a run chose, took or left out; WARNING) and its lines of progress (what it
reads, builds, lends, resumes from; INFO). They go through the ``dynakd`` logger, so a program silences or redirects
them with the standard ``logging`` module, as transformers' own messages go through its logger:
``logging.getLogger("dynakd").setLevel(logging.WARNING)`` keeps the notes alone, ``logging.ERROR`` silences both; a
handler of one's own on that logger gets them too (``propagate`` is off, so a root handler does not print them twice;
DynaKD's own printer is the handler named ``HANDLER_NAME``, to remove where one's own should be the only one). By
default they are printed as the command line shows them, to standard output, or standard error where the caller says
so. A command's results (scores, the folder written) are printed, not logged.

``logging.config.dictConfig`` (and ``fileConfig``) disables every logger it does not name unless told
``disable_existing_loggers: False``; a notebook's logging set-up would so silence notes that warn of wrong results
(a teacher of another task, weights that start random), so a note turns the logger on again: a level is the way to
silence them. (A ``dictConfig`` that names ``dynakd`` replaces its handlers: give it one, or ``propagate: true``.)"""

from __future__ import annotations

import logging
import sys

LOGGER = logging.getLogger("dynakd")
LEVEL = logging.WARNING  # a note tells of something the user did not ask for, or may not expect
HANDLER_NAME = "dynakd-notes"  # (by name, not class: a reloaded module's class is another, and would add a second)


class Printed(logging.Handler):
    """``note: ...`` on the stream current at each note, not one bound when the handler was made (a notebook's or a
    test's own ``sys.stdout``)."""

    def emit(self, record: logging.LogRecord) -> None:
        # a failure is the caller's, as print's was (no handleError, logging's "--- Logging error ---" traceback): an
        # output closed early ends the command as the CLI says (141), not in a traceback it goes on after
        stream = sys.stderr if getattr(record, "to_stderr", False) else sys.stdout
        prefix = "note: " if record.levelno >= LEVEL else ""
        print(f"{prefix}{record.getMessage()}", file=stream, flush=True)


if not any(h.name == HANDLER_NAME for h in LOGGER.handlers):
    handler = Printed()
    handler.name = HANDLER_NAME
    LOGGER.addHandler(handler)
if LOGGER.level == logging.NOTSET:  # its own level: a root logger set to ERROR (basicConfig) silences no note
    LOGGER.setLevel(logging.INFO)  # (a level set before DynaKD was imported stays)
LOGGER.propagate = False


def say(text: str, *, stderr: bool = False) -> None:
    """Say a note, from whichever process calls (``distributed.note``: from the first alone)."""
    _log(LEVEL, text, stderr)


def tell(text: str) -> None:
    """Say a line of progress (no ``note:``), from whichever process calls."""
    _log(logging.INFO, text, False)


def _log(level: int, text: str, stderr: bool) -> None:
    LOGGER.disabled = False  # (a dictConfig turned it off: module docstring; its level stays)
    LOGGER.log(level, "%s", text, extra={"to_stderr": stderr})
