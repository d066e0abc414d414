"""A model's name checked before any model library loads: a folder that must exist and hold a model, or a hub id.

Kept apart from ``models`` (which imports torch and transformers) so the command line names a mistyped folder at once
(``cli.main`` checks the names its flags give before the command runs) rather than after seconds of imports.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import hub, packaged
from .checkpoints import CONFIG_NAME, checkpoints, is_checkpoint_name
from .errors import DynaKDError, first_line


def check_model_folder(name: str) -> None:
    """A local path must be a model folder; a name that can only be a path must exist (else the hub would be asked,
    with retries, for a folder mistyped); anything else is taken as a hub id (``name`` or ``namespace/name``), and
    the hub is asked at once whether it can be reached (offline else, rather than failing after retries)."""
    if check_local_name(name):
        hub.offline_unless_reachable()


def check_local_name(name: str) -> bool:
    """``check_model_folder`` on this machine alone, asking no hub: whether ``name`` is taken as a hub id."""
    name = packaged.resolve(name)
    path = Path(os.path.expanduser(name))  # (--teacher=~/x reaches it unexpanded; the runner expands it so too)
    try:
        has_config = (path / "config.json").is_file()
        exists = has_config or path.exists()
    except OSError as e:  # e.g. a folder without read permission: pathlib raises rather than answering False
        raise DynaKDError(f"cannot read the model folder '{name}': {e.strerror or first_line(e)}") from None
    if exists:
        if not has_config and (path / CONFIG_NAME).is_file():  # a DynaKD run's folder without its model, where it
            # holds what a run writes (a dynakd.yaml alone may be a config kept to reuse: "not a model folder")
            if (path / "metrics.json").is_file():
                raise DynaKDError(f"'{name}' holds a finished run whose model is gone (no config.json): train it again "
                                  "with --overwrite")
            if kept := [p.name for p in checkpoints(path) if (p / "config.json").is_file()]:
                raise DynaKDError(f"'{name}' holds a run that has not finished, with no model saved yet: the command "
                                  f"it was started with resumes it; each of its checkpoints ({', '.join(kept)}) holds "
                                  "the model as it was")
        if not has_config:
            raise DynaKDError(f"'{name}' is not a model folder (no config.json){_what_it_is(path)}")
        return False
    in_local_folder = len(path.parts) > 1 and Path(path.parts[0]).is_dir()  # runs/teacher, with ./runs here
    if name.startswith(("/", ".", "~")) or name.count("/") > 1 or in_local_folder:
        gone = ""
        if is_checkpoint_name(path.name) and (path.parent / CONFIG_NAME).is_file():  # (a DynaKD run's folder)
            kept = [p.name for p in checkpoints(path.parent)]
            gone = (f" (the run's checkpoints: {', '.join(kept)})" if kept else
                    " (a run keeps its checkpoints only while it trains, unless --keep-checkpoints: its final model "
                    f"is {path.parent})")
        raise DynaKDError(f"model folder not found: {name}{gone}")
    return True


def _what_it_is(path: Path) -> str:
    """What a path without a config.json holds that a user may have taken for a model: a GGUF file (llama.cpp's
    quantized format, which transformers reads only to dequantize it), or another file of a model's folder."""
    gguf = [path] if path.suffix == ".gguf" else sorted(path.glob("*.gguf")) if path.is_dir() else []
    if gguf:
        return (f": {gguf[0].name} is a GGUF file (llama.cpp's format), which DynaKD does not read; give the "
                "transformers checkpoint it was made from, or convert it to one (pip install gguf, then transformers' "
                "from_pretrained with gguf_file= and save_pretrained: README, 'Data', shows each step)")
    if path.is_file():
        return f": it is a file; give the folder that holds it with its config.json ({path.parent})"
    return ""
