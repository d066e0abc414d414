"""User-facing errors: the CLI prints these as one line, without a traceback."""


class DynaKDError(Exception):
    """A problem with the user's input (config, data, models, paths) that the user can fix."""
