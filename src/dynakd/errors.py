"""User-facing errors: the CLI prints these as one line, without a traceback."""


class DynaKDError(Exception):
    """A problem with the user's input (config, data, models, paths) that the user can fix."""


class Terminated(KeyboardInterrupt):
    """A SIGTERM (a cluster preempting the job, ``kill``), raised as Ctrl-C's interrupt is, so that a command ends
    as it does on Ctrl-C: cleaned up, saying what it leaves (a default SIGTERM ended it without a word)."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its type's name when the message is empty (``TimeoutError()``):
    the reason a one-line error carries when it wraps a library's exception."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
