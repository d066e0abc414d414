"""Notes go through the ``dynakd`` logger (notes.py): printed as the command line shows them, silenced or caught with
the standard logging module."""

from __future__ import annotations

import logging

from dynakd import distributed
from dynakd.notes import say


def test_a_note_is_printed_where_its_caller_says(capsys):
    say("the teacher's task is lent")
    say("a record left out", stderr=True)
    out, err = capsys.readouterr()
    assert out == "note: the teacher's task is lent\n" and err == "note: a record left out\n"


def test_a_program_silences_or_catches_the_notes_with_logging(capsys):
    """From a notebook user's walkthrough (2026-12-07): notes went through print, which a program could neither
    silence nor send elsewhere."""
    logger = logging.getLogger("dynakd")
    level = logger.level
    logger.setLevel(logging.ERROR)  # (setLevel, not the attribute: a logger caches what its level lets through)
    try:
        say("unheard")
        distributed.note("unheard too")
    finally:
        logger.setLevel(level)
    assert capsys.readouterr() == ("", "")
    caught = []

    class Catch(logging.Handler):
        def emit(self, record):
            caught.append(record.getMessage())

    logger.addHandler(handler := Catch())
    try:
        logging.getLogger().addHandler(root := Catch())  # (not printed twice through the root logger)
        distributed.note("a 100% sure note")  # (a message with a % of its own is not formatted)
    finally:
        logger.removeHandler(handler)
        logging.getLogger().removeHandler(root)
    assert caught == ["a 100% sure note"] and capsys.readouterr().out == "note: a 100% sure note\n"


def test_only_the_first_process_says_a_note(capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    distributed.note("said by process 0 alone")
    assert capsys.readouterr().out == ""


def test_a_logging_set_up_of_ones_own_leaves_the_notes_heard(capsys):
    """A review: ``logging.config.dictConfig`` turns off every logger it does not name (its default), which silenced
    notes that warn of wrong results; a root logger at ERROR silenced them too; a reloaded module printed each twice."""
    import importlib
    import logging.config

    from dynakd import notes
    from dynakd.runner import run_scope

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        logging.config.dictConfig({"version": 1, "root": {"level": "ERROR"}})
        with run_scope(progress=False):
            say("heard in a run")
        assert capsys.readouterr().out == "note: heard in a run\n"
        importlib.reload(notes)
        notes.say("once")
        assert capsys.readouterr().out == "note: once\n"
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers


def test_lines_of_progress_go_through_the_logger_below_the_notes(capsys):
    """A user's walkthrough: `distill: task sst2 (as the teacher ...)`, `building the teacher cache ...` stayed
    printed under a level that silenced the notes; they are INFO, the notes WARNING."""
    from dynakd.notes import tell

    tell("building the teacher cache (16 rows) -> here")
    assert capsys.readouterr().out == "building the teacher cache (16 rows) -> here\n"  # (no note: of its own)
    logger = logging.getLogger("dynakd")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        tell("unheard")
        say("heard")
    finally:
        logger.setLevel(level)
    assert capsys.readouterr().out == "note: heard\n"
