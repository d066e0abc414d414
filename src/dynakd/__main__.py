"""``python -m dynakd`` runs the command line, like ``python -m dynakd.cli`` and the ``dynakd`` script."""

from .cli import run

run()
