"""The teacher's scores, recorded once per teacher, rows and settings: a ``distill`` scores its teacher beside its
student, and a run after it on the same dev rows reads the recorded scores instead of scoring again (on all of SST-2's
dev set on a CPU, 58 s of a 107 s command).

A record is read only where everything the scores follow is the same: the teacher's files (their folder, sizes,
inodes and modification and change times; a hub model's revision), the teacher's config as loaded (its padding token,
its label names) and its tokenizer, the encoded evaluation rows with their labels (and, for extractive QA, the
windows' offsets and the answers), the input length, padding, batch size, precision, kind of device and CPU threads,
and the code (DynaKD's version and commit, with a hash of the changes not committed where there are some; torch's and
transformers'). The scores come out the same. One process only: a multi-process run scores as
before (its processes would have to agree on reading a file another run may be writing). Records live under
``$DYNAKD_CACHE`` (``~/.cache/dynakd``) in ``teacher-scores/``; deleting one scores again. A record holds the scores
and the loss, not the timing of the evaluation that made them.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch

from . import atomic, jsonfile, packaged
from .cache import cache_home
from .data.fingerprint import tokenizer_state
from .provenance import source_changes, versions

FORMAT_VERSION = 1
# what the Trainer's evaluation reports of its own pace: a record keeps the scores, not the timing of the run that
# made them (a run that reads it did not take that time)
TIMING = ("runtime", "samples_per_second", "steps_per_second")
_MODEL_FILES = (".safetensors", ".bin")  # weights; with config.json and a sharded checkpoint's *.index.json


def model_files(name: str, model=None) -> dict[str, Any] | None:
    """What identifies the files ``model`` was loaded from, cheaply (a teacher's weights can be many GB, which hashing
    as the teacher cache does would cost more than scoring on a GPU): a local folder by its path and its weight and
    config files' sizes and modification times (``--overwrite`` of a teacher run writes them anew), a hub model by the
    revision transformers read; None where neither is known (no record then)."""
    folder = Path(packaged.resolve(name)).expanduser()
    if folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.is_file() and (
            p.suffix in _MODEL_FILES or p.name == "config.json" or p.name.endswith(".index.json")))
        if not files:
            return None
        stats = [(p.name, p.stat()) for p in files]  # (inode and change time: a copy that keeps times is no match)
        return {"folder": str(folder.resolve()),
                "files": [[name, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns] for name, st in stats]}
    revision = getattr(getattr(model, "config", None), "_commit_hash", None)  # (None before the model loads)
    return {"hub": name, "revision": revision} if revision else None


def rows_fingerprint(eval_sets: dict[str, Any], qa_eval=None) -> str:
    """Hash of the encoded evaluation rows (every column, the labels among them, split by split) and, for extractive
    QA, of what turns windows into answers and scores them (each window's question and offsets, the questions' ids,
    contexts and answers, and the span limits). JSON text, which takes every column's values as they are (ids,
    float labels, offsets with their None outside the context)."""
    h = hashlib.sha256()
    for split in sorted(eval_sets):
        rows = eval_sets[split]
        h.update(f"{split}:{len(rows)}|".encode())
        for column in sorted(rows.column_names):
            h.update(column.encode())
            h.update(json.dumps(rows[column][:]).encode())  # (a Column: its values as a list)
    if qa_eval is not None:
        examples = qa_eval.examples
        for part in (qa_eval.example_ids, qa_eval.offsets, *(examples[c][:] for c in ("id", "context", "answers")),
                     [qa_eval.n_best, qa_eval.max_answer_length]):
            h.update(json.dumps(part).encode())
    return h.hexdigest()[:16]


def device_kind(device: torch.device | str) -> str:
    """The kind of device the scores came from: a GPU by its name, a CPU by the instruction set torch's kernels use
    (another one rounds otherwise)."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        return f"cpu:{torch.backends.cpu.get_cpu_capability()}"
    return device.type


def score_settings(teacher_files: dict[str, Any], teacher, tokenizer, task, rows: str, *, max_length: int,
                   padding: int | None, side: str, batch_size: int, precision: str,
                   device: torch.device | str) -> dict[str, Any]:
    """Everything a teacher's scores follow (``model_files``, ``rows_fingerprint``, ...): a record is read only where
    all of it is the same."""
    return {"format": FORMAT_VERSION, "teacher": teacher_files, "config": _hash(teacher.config.to_json_string()),
            "tokenizer": _hash(tokenizer_state(tokenizer)), "task": task.name, "metrics": list(task.metrics),
            "regression": task.is_regression, "rows": rows, "max_seq_length": max_length,
            "pad_to_multiple_of": padding or 1, "padding_side": side, "eval_batch_size": batch_size,
            "precision": precision, "device": device_kind(device), "threads": torch.get_num_threads(),
            "versions": versions(), "changes": source_changes()}


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def scores_root() -> Path:
    return cache_home() / "teacher-scores"


def record_path(settings: dict[str, Any]) -> Path:
    return scores_root() / f"{_hash(json.dumps(settings, sort_keys=True))}.json"


def read(settings: dict[str, Any]) -> tuple[dict[str, float], Path] | None:
    """The scores recorded under ``settings``, and their file; None where there are none (or the file is not one
    this wrote: damaged, or of other settings)."""
    path = record_path(settings)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("settings") != settings or not isinstance(record.get("scores"), dict):
        return None
    # (a score that could not be computed is written null, strict JSON: read back as the NaN a scoring gives)
    return {k: math.nan if v is None else v for k, v in record["scores"].items()}, path


def write(settings: dict[str, Any], scores: dict[str, float], teacher: str) -> None:
    """Record ``scores`` under ``settings`` (the teacher named as given, for a reader of the file). A cache that
    cannot be written (a read-only home) records nothing: the run has its scores."""
    path = record_path(settings)
    scores = {k: v for k, v in scores.items() if k not in TIMING}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, jsonfile.dumps({"teacher": teacher, "settings": settings, "scores": scores},
                                               indent=1))
    except OSError:
        pass
