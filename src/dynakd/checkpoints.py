"""Checkpoints of a run: where they are, whether they are whole, and the distiller's part of them.

The Trainer writes the model, optimizer, scheduler, RNG states and its own state into ``checkpoint-N``; DynaKD adds
``dynakd_distiller.pt`` (EMA and dataset references, the aligner's running plan, learned projections and queries,
term-balancing magnitudes). The schedule position follows from the restored ``global_step``.

Atomicity: transformers 5 writes straight into ``checkpoint-N``, so a process killed mid-save would leave a folder
that ``get_last_checkpoint`` takes for the newest checkpoint. ``DistillationTrainer`` therefore writes into a
staging folder (``.partial-checkpoint-N``) and renames it when every file is on disk; only ``checkpoint-N`` folders
are ever resumed from, and staging leftovers are deleted when a run starts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from pathlib import Path

from .errors import DynaKDError, first_line

# torch and safetensors are imported where they are used: a command's model names are checked with this module
# (``modelfolder``) before torch loads, so a mistyped folder is named at once rather than after seconds of imports

CONFIG_NAME = "dynakd.yaml"  # the settings a DynaKD run (or a sweep cell) was run with, in its folder
PREFIX = "checkpoint"
STAGING = ".partial-"
DISTILLER_STATE = "dynakd_distiller.pt"
LAUNCH = "dynakd_launch.json"  # processes and batch sizes of the run that wrote it
DISTILLER_OPTIMIZER = "dynakd_distiller_optimizer.pt"  # FSDP2 only: the optimizer state of the distiller's parameters
# What a whole checkpoint holds; the model and optimizer files are named differently under FSDP and DeepSpeed, which
# keeps its scheduler in global_stepN/ too. Without scheduler.pt the Trainer loads neither optimizer nor scheduler,
# and without a process's RNG state file it restores none, both without a word: the resumed run drifts.
REQUIRED = ("trainer_state.json", DISTILLER_STATE)
MODEL_FILES = ("model*.safetensors", "pytorch_model*.bin", "pytorch_model_fsdp_*", "global_step*")
OPTIMIZER_FILES = ("optimizer.pt", "optimizer.bin", "optimizer_*", "global_step*")
SCHEDULER = "scheduler.pt"
DEEPSPEED = "global_step*"
_NAME = re.compile(rf"^{PREFIX}-(\d+)$")


def is_checkpoint_name(name: str) -> bool:
    return bool(_NAME.match(name))


def checkpoint_step(folder: Path) -> int:
    """The training step a ``checkpoint-N`` folder was written at."""
    return int(_NAME.match(folder.name).group(1))


def checkpoints(out: Path) -> list[Path]:
    """Finished checkpoint folders of a run, oldest first."""
    if not out.is_dir():
        return []
    return sorted((p for p in out.iterdir() if p.is_dir() and _NAME.match(p.name)), key=checkpoint_step)


def rotate(out: Path, limit: int | None, best: str | None) -> None:
    """Delete the oldest checkpoints of the run in ``out`` past ``limit`` (``save_total_limit``), never the newest (a
    resume's) nor ``best``: transformers' ``rotate_checkpoints``, but over the run's own checkpoint folders, by their
    exact names. Its pattern (``checkpoint-*``, then a step read anywhere in the name) deleted a user's copies beside
    them, ``checkpoint-2-good`` or a renamed ``checkpoint-8.broken``, with the run's."""
    if limit is None or limit <= 0:
        return
    found = checkpoints(out)
    kept = {found[-1].resolve()} if found else set()
    if best is not None:
        kept.add(Path(best).resolve())
    extra = len(found) - max(limit, len(kept))
    for folder in found:
        if extra <= 0:
            break
        if folder.resolve() not in kept:
            shutil.rmtree(folder, ignore_errors=True)
            extra -= 1


def latest_checkpoint(out: Path) -> Path | None:
    found = checkpoints(out)
    return found[-1] if found else None


def remove_partial(out: Path) -> None:
    """Delete staging folders left by a process killed while writing a checkpoint."""
    if out.is_dir():
        for p in out.iterdir():
            if p.name.startswith(STAGING):
                shutil.rmtree(p, ignore_errors=True)


def remove_checkpoints(out: Path) -> None:
    for p in checkpoints(out):
        shutil.rmtree(p, ignore_errors=True)


def check_checkpoint(folder: Path) -> None:
    """Refuse a checkpoint with missing or unreadable files before any model is loaded (headers only: cheap)."""
    advice = _advice(folder)
    try:
        if missing := _missing(folder):
            raise DynaKDError(f"checkpoint {folder} is incomplete (missing {', '.join(missing)}); {advice}")
        json.loads((folder / "trainer_state.json").read_text())["global_step"]
        for f in ("config.json", LAUNCH):  # parsed by the Trainer on resuming, and by check_launch (an emptied
            if (folder / f).is_file():  # file, a crash's before its data reached the disk, was a traceback)
                json.loads((folder / f).read_text())
        for f in folder.glob("model*.safetensors"):
            _check_safetensors(f)
        for f in ("optimizer.pt", SCHEDULER, DISTILLER_STATE, DISTILLER_OPTIMIZER, *_rng_files(folder)):
            if (folder / f).is_file():
                with zipfile.ZipFile(folder / f) as z:  # torch.save files are zip archives; truncation breaks them
                    z.namelist()
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise DynaKDError(f"checkpoint {folder} is corrupt ({type(e).__name__}: {e}); {advice}") from None


def _missing(folder: Path) -> list[str]:
    """The files of a whole checkpoint that ``folder`` lacks (the model and optimizer by their usual names)."""
    missing = [name for patterns, name in ((MODEL_FILES, "model.safetensors"), (OPTIMIZER_FILES, "optimizer.pt"))
               if not any(any(folder.glob(p)) for p in patterns)]
    scheduler = [] if any(folder.glob(DEEPSPEED)) else [SCHEDULER]
    return missing + [f for f in (*scheduler, *_rng_files(folder), *REQUIRED) if not (folder / f).is_file()]


def _rng_files(folder: Path) -> list[str]:
    """The RNG state files of the processes that wrote ``folder`` (one each, as the Trainer names them), from its
    launch record; without one (written before the record existed), those it holds, at least one."""
    processes = _launch_of(folder).get("processes")
    if processes is None:
        return [p.name for p in folder.glob("rng_state*.pth")] or ["rng_state.pth"]
    return ["rng_state.pth"] if processes <= 1 else [f"rng_state_{i}.pth" for i in range(processes)]


def _launch_of(folder: Path) -> dict[str, int]:
    """The launch record ``folder`` holds (``save_launch``), or an empty one."""
    path = folder / LAUNCH
    return json.loads(path.read_text()) if path.is_file() else {}


def _check_safetensors(path: Path) -> None:
    """Opening reads only the header, and safetensors refuses a file its header does not fully describe."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt"):
            pass
    except SafetensorError as e:
        raise ValueError(f"{path.name}: {e}") from None


def _advice(folder: Path) -> str:
    older = [p for p in checkpoints(folder.parent) if p != folder]
    if older:
        return f"delete it to resume from {older[-1].name}, or pass --overwrite to start again"
    return "delete it or pass --overwrite to start again"


def save_distiller_state(distiller, folder: Path) -> None:
    import torch

    torch.save(distiller.state_dict(), folder / DISTILLER_STATE)


def load_distiller_state(distiller, folder: Path) -> None:
    if not (folder / DISTILLER_STATE).is_file():  # (a Trainer's own checkpoint, given to train() in Python)
        raise DynaKDError(f"{folder} lacks {DISTILLER_STATE} (not a DynaKD checkpoint, or incomplete)")
    import torch

    try:
        distiller.load_state_dict(torch.load(folder / DISTILLER_STATE, map_location="cpu", weights_only=True))
    except (OSError, RuntimeError, KeyError) as e:
        raise DynaKDError(f"checkpoint {folder} does not fit this run's distiller ({_mismatch(e)})") from None
    except DynaKDError as e:
        raise DynaKDError(f"checkpoint {folder} does not fit this run's distiller: {e}") from None


def _mismatch(e: Exception) -> str:
    """What ``load_state_dict`` found that does not fit: torch's lines after its header ("Error(s) in loading
    state_dict for Distiller:"), the missing and unexpected keys, on one line."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    detail = "; ".join(lines[1:]) if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else first_line(e)
    return detail if len(detail) <= 400 else detail[:400] + "..."


def launch_record(processes: int, per_device_batch: int, gradient_accumulation_steps: int, *,
                  teacher_cache: bool | None = None) -> dict[str, int | bool]:
    """How a run's batches are made (what ``save_launch`` writes and ``check_launch`` compares), and whether they
    read a teacher cache (``teacher_cache``; recorded, not compared: ``read_teacher_cache``)."""
    record = {"processes": processes, "per_device_batch": per_device_batch,
              "gradient_accumulation_steps": gradient_accumulation_steps}
    return record if teacher_cache is None else record | {"teacher_cache": teacher_cache}


def read_teacher_cache(folder: Path) -> bool | None:
    """Whether the training that wrote checkpoint ``folder`` read a teacher cache; None where its launch record does
    not say (written before it did)."""
    return _launch_of(folder).get("teacher_cache")


def save_launch(folder: Path, launch: dict[str, int | bool]) -> None:
    (folder / LAUNCH).write_text(json.dumps(launch))


# How each part of a launch record is said in a refusal.
_LAUNCH_SAID = {"processes": "{} process(es)", "per_device_batch": "a per-process batch of {}",
                "gradient_accumulation_steps": "{} gradient accumulation step(s)"}


def check_launch(folder: Path, launch: dict[str, int | bool]) -> None:
    """Refuse to resume with another number of processes, per-process batch or gradient accumulation: the global
    batch would change, and with it the number of steps, the schedules' positions and which rows the skipped batches
    held (the Trainer would carry on without a word). Checkpoints written before this file existed are not checked."""
    saved = _launch_of(folder)
    differ = [k for k in _LAUNCH_SAID if saved.get(k, launch[k]) != launch[k]]
    if not differ:
        return

    def said(d):
        return " and ".join(_LAUNCH_SAID[k].format(d[k]) for k in differ)

    def batch(d):
        return f"{d['per_device_batch']} x {d['gradient_accumulation_steps']} x {d['processes']}"

    raise DynaKDError(f"{folder.name} was written with {said(saved)} (global batch {batch(saved)}), and this run has "
                      f"{said(launch)} (global batch {batch(launch)}): resume it with {said(saved)}, or start again "
                      "with --overwrite")


def io_reason(e: Exception) -> str:
    """One line saying why a write failed: ``OSError``s carry it; ``torch.save`` raises a ``RuntimeError`` from its
    zip writer instead (e.g. on a full disk)."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return first_line(e)


def publish(staging: Path, final: Path) -> None:
    """Move a fully written checkpoint into place (a rename: atomic on one file system)."""
    old = None
    if final.exists():  # re-saving the same step (e.g. resumed at the last step): swap, then drop the old one
        old = final.with_name(STAGING + final.name + ".old")
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
