"""DynaKD's notes (``note: ...``): what a run chose, read or left out. They go through the ``dynakd`` logger, so a
program silences or redirects them with the standard ``logging`` module, as transformers' own messages go through
its logger: ``logging.getLogger("dynakd").setLevel(logging.ERROR)`` silences them; a handler of one's own on that
logger gets them too (``propagate`` is off, so a root handler does not print them twice). By default they are
printed as the command line shows them, to standard output, or standard error where the caller says so.

``logging.config.dictConfig`` (and ``fileConfig``) disables every logger it does not name unless told
``disable_existing_loggers: False``; a notebook's logging set-up would so silence notes that warn of wrong results
(a teacher of another task, weights that start random), so each run turns the logger on again (``enabled``): a
level is the way to silence them."""

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
        try:
            stream = sys.stderr if getattr(record, "to_stderr", False) else sys.stdout
            print(f"note: {record.getMessage()}", file=stream, flush=True)
        except Exception:  # noqa: BLE001 (logging's own rule: a handler that fails says so and goes on)
            self.handleError(record)


if not any(h.name == HANDLER_NAME for h in LOGGER.handlers):
    handler = Printed()
    handler.name = HANDLER_NAME
    LOGGER.addHandler(handler)
if LOGGER.level == logging.NOTSET:  # its own level: a root logger set to ERROR (basicConfig) silences no note
    LOGGER.setLevel(logging.INFO)  # (a level set before DynaKD was imported stays)
LOGGER.propagate = False


def enabled() -> None:
    """Turn the logger on again where a ``dictConfig`` turned it off (module docstring); its level stays."""
    LOGGER.disabled = False


def say(text: str, *, stderr: bool = False) -> None:
    """Say a note, from whichever process calls (``distributed.note``: from the first alone)."""
    LOGGER.log(LEVEL, "%s", text, extra={"to_stderr": stderr})
