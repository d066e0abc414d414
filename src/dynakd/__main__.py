"""``python -m dynakd`` runs the command line, like ``python -m dynakd.cli`` and the ``dynakd`` script."""

import sys

from .cli import main

sys.exit(main())
