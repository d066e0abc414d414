"""``dynakd ablate``: expand a grid of runs from one YAML file, run each cell once, resumably.

A sweep file::

    name: b1-sst2
    base: {task: sst2, data_dir: ../shared/data/glue, max_train_samples: 16000, epochs: 1}   # every cell
    teacher: {model: minilm, epochs: 1, lr: 1.0e-4, per_seed: false, seed: 42}               # fine-tuned once
    grid: {method: [kd, full], align.name: [fixed, ot], student_layers: [2, 3], seed: [1, 2, 3]}
    smoke: {max_steps: 2, grid: {student_layers: [2]}}     # with --smoke: overrides, one seed

``grid`` may also be a list of such mappings: the cells are the union of their products (as in scikit-learn's
``ParameterGrid``), so one file can give each depth or method its own values (say, each method at its best rate)
without running every combination. The ``smoke`` grid overrides apply to each of them. Append new grids at the end:
cells are split between shards by position, so a grid inserted in the middle moves cells to other shards (finished
cells are still found by their key).

Cells whose method has no layer term (``task``, ``kd``) ignore the aligner axes, so they run once per remaining
combination; likewise an aligner's own options (``align.fixed_map`` for ``fixed``, ``align.eps`` for ``ot``, ...) are
dropped from cells of the other aligners. Finished cells are recorded in ``results.jsonl`` (one JSON line per run)
and skipped on a rerun, so a killed sweep resumes where it stopped. ``--shard K/N`` runs every N-th cell of the grid
(from the K-th), so N processes (one per GPU, or per machine sharing the folder) split a sweep between them.
The teacher is fine-tuned once into the sweep folder and reused; a teacher there whose saved settings differ from
the sweep's is refused, not reused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import gc
import hashlib
import itertools
import json
import os
import re
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import yaml

from .. import atomic, hub, jsonfile
from ..config import (
    ALIGNER_READS,
    DATASET_KEYS,
    SWEEP_SECTIONS,
    DistillConfig,
    build_config,
    default_aligner,
    existing_part,
    layer_term,
    load_yaml,
    merge_dicts,
    nest,
    parse_layer,
    typed,
    underscored,
    unread_options,
)
from ..data import get_task, synthetic_serves
from ..distributed import note
from ..errors import DynaKDError, first_line
from ..locks import locked
from ..models import check_model_folder, check_student_request, local_config, remote_code
from ..rundir import (
    check_not_a_run,
    config_differences,
    finetune_config_differences,
    recorded_config,
    resolved_config,
    resolved_differences,
    said_differences,
    stopped_here,
)
from ..runner import distill, finetune

SWEEP_KEYS = {"name", "output", "base", "teacher", "grid", "smoke"}
DEFAULT_SMOKE = {"max_train_samples": 32, "max_eval_samples": 32, "max_steps": 2, "batch_size": 16,
                 "max_seq_length": 32, "logging_steps": 1}
SMOKE_TRANSFER = 16  # a transfer set in a smoke run (the synthetic corpus that may stand in has 4,000 rows)
# Options of the layer terms (aligner, dynamics, their weights): dropped from cells of methods without such a term, and
# left out when a row is paired with the `kd` run of the same settings (report.py).
LAYER_TERM_OPTIONS = ("align", "dynamics", "beta", "hidden_weight")
# Options and the aligners that read them: a grid over one must not repeat the cells of the other aligners.
ALIGNER_OPTIONS = {f"align.{key}": {name for name, reads in ALIGNER_READS.items() if key in reads}
                   for key in set().union(*ALIGNER_READS.values())}


@dataclasses.dataclass
class Sweep:
    name: str
    output: Path
    base: dict[str, Any]
    teacher: dict[str, Any]
    grid: list[dict[str, list[Any]]]  # one or more grids; the cells are the union of their products
    smoke: bool = False  # a --smoke run, in a throwaway folder of its own

    def __post_init__(self):
        if isinstance(self.grid, dict):  # one grid, as a sweep built in Python may give it
            self.grid = [self.grid]


def load_sweep(path: str | Path, *, smoke: bool = False, output: str | None = None) -> Sweep:
    raw = load_yaml(path)
    _check_sweep_keys(raw, path)
    base = underscored(_section(raw, "base", path))  # (dashed keys as their underscored selves, as configs read them)
    grids = _grids(raw.get("grid"), path)
    _check_set_by_the_sweep([("base", base), *(("grid", grid) for grid in grids)], path)
    _check_teacher_data(grids, base, path)
    _check_grid_values(grids, path)  # (before --smoke keeps one seed: the values it drops are checked too)
    _check_section_keys({"base": base}, path)  # (before smoke's settings join it: a typo there is smoke's)
    _check_section_types({"base": base}, path)  # (before smoke's values replace some: max_steps 'ten' passed)
    if smoke:
        base = _smoke(raw, base, grids, path)
    for key in ("name", "output"):
        if isinstance(raw.get(key), int) and not isinstance(raw[key], bool):  # name: 2024
            raw[key] = str(raw[key])
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise DynaKDError(f"{path}: '{key}' must be a string, got {raw[key]!r}")
    teacher = _teacher_section(raw, base, path, smoke)
    name = sweep_name(raw, path)
    # a smoke run goes to the sweep folder's smoke/ subfolder (also under --output): its tiny cells have the real
    # cells' keys, so in the real folder they would pass for finished
    out = Path(output or sweep_folder(raw, path)) / ("smoke" if smoke else "")
    if not (where := existing_part(out)).is_dir():
        raise DynaKDError(f"the sweep's output {out} is a file, not a folder" if where == out else
                          f"the sweep's output {out} is inside a file, {where}")
    check_not_a_run(out.parent if smoke else out, "ablate", "the sweep's teacher and cells")
    sweep = Sweep(name, out, base, teacher, grids, smoke)
    try:  # validate every cell (and the teacher's settings) before running any; errors name the sweep file
        every = _checked_cells(sweep)
    except DynaKDError as e:
        raise DynaKDError(f"{path}: {e}") from None
    _note_unread_axes(sweep, every, path)  # (once the sweep holds: a refused sweep says so alone)
    return sweep


def _check_sweep_keys(raw: dict[str, Any], path: str | Path) -> None:
    """Refuse keys a sweep file does not have, and a run's config given as a sweep."""
    unknown = set(raw) - SWEEP_KEYS
    run_keys = {f.name for f in dataclasses.fields(DistillConfig)}
    if unknown and not set(SWEEP_SECTIONS) & set(raw) and set(underscored(dict.fromkeys(unknown))) & run_keys:
        # a run's config (a run folder's dynakd.yaml): its keys one by one would be a list of every setting
        raise DynaKDError(f"{path} is a run's config: use it with dynakd distill/finetune --config {path}")
    if unknown:
        metric = f"; {NO_METRIC} (no 'metric')" if "metric" in unknown else ""
        raise DynaKDError(f"{path}: unknown sweep key(s) {sorted(unknown)}; valid: {sorted(SWEEP_KEYS)}{metric}")


def _smoke(raw: dict[str, Any], base: dict[str, Any], grids: list[dict], path: str | Path) -> dict[str, Any]:
    """Shrink the sweep for ``--smoke``: ``grids`` in place (``smoke.grid``'s values, one seed, a small transfer
    set), and the base returned with ``smoke``'s settings (the synthetic corpus where the data is not here)."""
    smoke_spec = underscored(_section(raw, "smoke", path))
    override = smoke_spec.pop("grid", None) or {}
    _check_section_keys({"smoke": smoke_spec}, path)
    if not isinstance(override, dict):
        raise DynaKDError(f"{path}: 'smoke.grid' must be one mapping of overrides, applied to every grid")
    override = _grids(override, path)[0] if override else {}
    _check_set_by_the_sweep([("smoke", smoke_spec), ("smoke.grid", override)], path)
    for grid in grids:
        grid.update(override)
        grid["seed"] = grid.get("seed", [42])[:1]  # one seed a grid: the smoke run checks the plumbing
        if "transfer_samples" in grid and "transfer_samples" not in override:  # a transfer set, as small
            grid["transfer_samples"] = [min(n, SMOKE_TRANSFER) if n else n for n in grid["transfer_samples"]]
    if base.get("transfer_samples") and "transfer_samples" not in smoke_spec:
        smoke_spec["transfer_samples"] = min(base["transfer_samples"], SMOKE_TRANSFER)
    base = merge_dicts(base, {**DEFAULT_SMOKE, **smoke_spec})
    if base.get("data_dir") and not Path(base["data_dir"]).is_dir():  # the plumbing can still be checked
        task = get_task(base.get("task", "sst2"))
        if not synthetic_serves(task):
            raise DynaKDError(f"{path}: data_dir {base['data_dir']} is not a folder here, and the synthetic "
                              f"corpus (single sentences, two labels) cannot stand in for {task.name}; run the "
                              "smoke check where the data is")
        print(f"[ablate] warning: data_dir {base.pop('data_dir')} is not a folder here: this smoke run uses the "
              "synthetic corpus, and the real sweep will fail until the data is there", file=sys.stderr, flush=True)
        base["synthetic"] = True
    return base


def _teacher_section(raw: dict[str, Any], base: dict[str, Any], path: str | Path, smoke: bool) -> dict[str, Any]:
    """The sweep's ``teacher`` settings, checked (under ``--smoke``, its own sizes shrunk as the base's are)."""
    teacher = underscored(_section(raw, "teacher", path))
    _check_section_keys({"teacher": teacher}, path)
    _check_section_types({"teacher": teacher}, path)
    if not isinstance(teacher.get("per_seed", False), bool):
        raise DynaKDError(f"{path}: teacher.per_seed: expected true or false, got {teacher['per_seed']!r}")
    if smoke:  # the teacher's own sizes (e.g. a larger training subset) shrink too
        teacher.update({k: base[k] for k in teacher if k in DEFAULT_SMOKE or k in (raw.get("smoke") or {})})
    _check_teacher_section(teacher, base, path)
    return teacher


def _checked_cells(sweep: Sweep) -> list[dict[str, Any]]:
    """Every cell of ``sweep``, each cell's config and the teacher's checked as ``distill`` and ``finetune`` would
    check them, before the teacher trains: a student named, the teacher's folder, depths, data files here."""
    every = cells(sweep)
    configs = {cell_key(cell): cell_config(sweep, cell, teacher_dir="teacher") for cell in every}
    teacher_cfg = teacher_config(sweep, 42)
    for key, cfg in configs.items():  # distill's own check, here before the teacher trains
        if not (cfg.student or cfg.student_layers or cfg.student_layer_ids):
            raise DynaKDError(f"cell {key} names no student: give student_layers (or student, "
                              "student_layer_ids) in base or grid")
    if teacher_cfg.model:  # (a mistyped path was found when the teacher's training started; none: refused there)
        check_model_folder(teacher_cfg.model)
    _check_student_depths(configs, teacher_cfg.model)
    for cfg in (teacher_cfg, *configs.values()):  # (a missing file was found after the teacher's set-up)
        for key in ("train_file", "validation_file"):
            if (file := getattr(cfg, key)) and not Path(file).expanduser().is_file():
                raise DynaKDError(f"{key} {file} is not a file here (a relative path counts from {Path.cwd()})")
        if cfg.data_dir and not Path(cfg.data_dir).expanduser().is_dir():  # (found after the teacher's training)
            raise DynaKDError(f"data_dir {cfg.data_dir} is not a folder here (a relative path counts from "
                              f"{Path.cwd()})")
    return every


def sweep_name(raw: dict[str, Any], path: str | Path) -> str:
    """A sweep file's ``name``, else its file's stem."""
    return str(raw.get("name") or Path(path).stem)


def sweep_folder(raw: dict[str, Any], path: str | Path) -> Path:
    """Where a sweep file's results go: its ``output``, else runs/NAME."""
    return Path(str(raw.get("output") or f"runs/{sweep_name(raw, path)}"))


def _check_student_depths(configs: dict[str, DistillConfig], teacher_model: str) -> None:
    """Each cell's student as distill checks it once the teacher is there, which is after the teacher's
    fine-tuning: one student named, and its layers against the depth of the model the teacher is fine-tuned from
    (its config alone, read from this machine; a config not at hand here, a hub id not cached, leaves the depth to
    distill), and a teacher whose layers share weights (ALBERT's), which no cell could keep layers of."""
    with remote_code(any(cfg.trust_remote_code for cfg in configs.values())):  # (a model of its own code: told)
        config = local_config(teacher_model)
    for key, cfg in configs.items():
        try:
            check_student_request(cfg, None, config=config, names=("student", "student_layers", "student_layer_ids"))
        except DynaKDError as e:
            raise DynaKDError(f"cell {key}: {e} (teacher.model: {teacher_model})") from None


# The task and data a sweep's teacher is fine-tuned on (once per seed, from base): a grid over one would distil cells
# from a teacher of another task or data, or (other dev rows held out) one that trained on the cell's evaluation rows.
# (max_eval_samples: the teacher's score is on base's rows)
TEACHER_DATA_KEYS = ("task", "data_dir", "train_file", "validation_file", *DATASET_KEYS, "text_columns", "label_column",
                     "dev_split", "train_articles", "synthetic", "max_eval_samples")


def _held_out(base: dict[str, Any]) -> bool:
    """Whether ``data_seed`` chooses the evaluation rows: the held-out part of dev, or a subset of them."""
    return base.get("dev_split") is not None or bool(base.get("synthetic")) or bool(base.get("max_eval_samples"))


# The settings a sweep gives every run itself, over base's and a grid's: given there, they went unread without a word
SET_BY_THE_SWEEP = {
    "teacher": "a sweep fine-tunes its own teacher (once, or once per seed with per_seed: true) as its teacher: "
               "section says (teacher.model: the checkpoint it starts from); to distil from a teacher you have, run "
               "dynakd distill --teacher",
    "model": "the teacher is fine-tuned from teacher.model (a section of its own)",
    "output": "the sweep writes its teacher and cells under its own output: key (top level)",
}


def _check_set_by_the_sweep(sections: list[tuple[str, dict[str, Any]]], path: str | Path) -> None:
    """Refuse ``SET_BY_THE_SWEEP`` keys in any of ``sections``, (name, settings) pairs."""
    for where, keys in sections:
        if given := [k for k in SET_BY_THE_SWEEP if k in keys]:
            raise DynaKDError(f"{path}: {where}.{given[0]}: {SET_BY_THE_SWEEP[given[0]]}")


def _check_teacher_data(grids: list[dict[str, list[Any]]], base: dict[str, Any], path: str | Path) -> None:
    held_out = _held_out(base)
    for grid in grids:
        keys = [k for k in grid if k in TEACHER_DATA_KEYS or (k == "data_seed" and held_out)]
        if keys:
            raise DynaKDError(f"{path}: grid over {', '.join(keys)}: a sweep fine-tunes its teacher on base's task and "
                              "data, so every cell must share them (with dev_split, synthetic data or "
                              "max_eval_samples, data_seed chooses the evaluation rows too); write one sweep file per "
                              "task or data")


NO_METRIC = "the report ranks on the task's first score and shows the others beside it"


# The settings that hold settings of their own (align, dynamics, a schedule's alpha): a grid names theirs dotted
_GROUPS = {f.name for f in dataclasses.fields(DistillConfig)
           if dataclasses.is_dataclass(getattr(DistillConfig(), f.name, None)) or "Schedule" in str(f.type)}


def _check_section_keys(sections: dict[str, dict[str, Any]], path: str | Path) -> None:
    """Name the section of a key no run reads: a typo in ``teacher:`` was said as the top level's, when the cells'
    configs were built. ``metric`` is none: the report ranks on the task's first score."""
    settings = {f.name for f in dataclasses.fields(DistillConfig)}
    for section, keys in sections.items():
        names = settings | ({"per_seed"} if section == "teacher" else set())  # (the teacher's own)
        for key in keys:
            if key == "metric":
                raise DynaKDError(f"{path}: {section}: 'metric' is no setting: {NO_METRIC}")
            if key == "per_seed" and key not in names:
                raise DynaKDError(f"{path}: {section}: per_seed is the teacher's: teacher: {{per_seed: true}} "
                                  "fine-tunes one teacher per seed")
            if key not in names and "." in key and key.split(".")[0] in _GROUPS:  # (the grid's spelling)
                group, rest = key.split(".", 1)
                raise DynaKDError(f"{path}: {section}: '{key}' is a grid's dotted key; in {section} write it nested, "
                                  f"{group}: {{{rest}: ...}}")
            if key not in names:
                close = difflib.get_close_matches(key, sorted(names), n=1)
                raise DynaKDError(f"{path}: {section}: unknown config key '{key}'"
                                  + (f" (did you mean '{close[0]}'?)" if close else ""))


def _check_section_types(sections: dict[str, dict[str, Any]], path: str | Path) -> None:
    """Each section's values of the types the settings take, checked as the file gives them: a ``--smoke`` run
    replaces some (``max_steps``, ``max_train_samples``), and passed where the real sweep then failed."""
    for section, values in sections.items():
        try:
            typed(DistillConfig, values, section)
        except DynaKDError as e:
            raise DynaKDError(f"{path}: {e}") from None


def _check_teacher_section(teacher: dict[str, Any], base: dict[str, Any], path: str | Path) -> None:
    """The teacher's own settings may not change the task or data the cells share: its score, printed beside theirs,
    was then on other rows (another ``max_eval_samples`` or ``data_seed``), or it trained on their evaluation rows
    (another ``dev_split`` or ``train_articles``)."""
    held_out = _held_out(base)
    defaults = {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
                for f in dataclasses.fields(DistillConfig) if f.name in TEACHER_DATA_KEYS}
    keys = [k for k in teacher if (k in TEACHER_DATA_KEYS or (k == "data_seed" and held_out))
            and teacher[k] != base.get(k, defaults.get(k))]
    if keys:
        raise DynaKDError(f"{path}: teacher sets {', '.join(keys)} otherwise than base: the teacher is scored on, and "
                          "trained apart from, the rows the cells use, so it shares base's task and data; set them "
                          "in base")


def _section(raw: dict[str, Any], key: str, path: str | Path) -> dict[str, Any]:
    """A section of the sweep file that maps config keys to values (``base``, ``teacher``, ``smoke``)."""
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise DynaKDError(f"{path}: '{key}' must be a mapping of config keys, got {value!r}")
    return dict(value)


def _check_grid_values(grids: list[dict[str, list[Any]]], path: str | Path) -> None:
    """Every grid value of the type its setting takes: a cell that drops an option (its method or aligner does not
    read it) never built it, and --smoke runs the first seed only, so ``seed: [1, two]`` passed a smoke check."""
    for grid in grids:
        for key, values in grid.items():
            for value in values:
                try:
                    typed(DistillConfig, nest(key, value))
                except DynaKDError as e:
                    raise DynaKDError(f"{path}: grid {e}") from None
                try:
                    parse_layer(nest(key, value))  # (a misspelt key, named with its section as base's are)
                except DynaKDError as e:
                    raise DynaKDError(f"{path}: grid: {e}") from None


def _note_unread_axes(sweep: Sweep, every: list[dict[str, Any]], path: str | Path) -> None:
    """Say which grid options no cell reads (``cells`` drops them where its method or aligner does not read them):
    ``align.tau: [0.05, 0.1]`` beside the OT aligner gave one cell, without a word. ``every``: the sweep's cells.
    Of a grid of several mappings, each mapping's are said too: ``{align.name: [ot], align.relative: [true, false]}``
    beside an attention mapping that reads ``align.relative`` gave one OT cell, without a word."""
    kept = {key for cell in every for key in cell}
    if dropped := sorted({key for grid in sweep.grid for key in grid} - kept):
        note(f"{path}: no cell reads grid option(s) {', '.join(dropped)} (its method or aligner does not): "
             "the cells leave them out")
    if len(sweep.grid) < 2:
        return
    for i, grid in enumerate(sweep.grid, 1):
        own = {key for cell in cells(dataclasses.replace(sweep, grid=[grid])) for key in cell}
        if unread := sorted(set(grid) - own - set(dropped)):
            note(f"{path}: grid mapping {i} ({', '.join(f'{k}: {_flow(v)}' for k, v in grid.items())}): none of its "
                 f"cells reads {', '.join(unread)} (its method or aligner does not): they leave it out")


def _flow(value: Any) -> str:
    """A grid's values as its YAML writes them (``[fixed]``, ``[0, 1]``)."""
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("\n...")


def _grids(spec: Any, path: str | Path) -> list[dict[str, list[Any]]]:
    """``grid:`` as a list of mappings from option to values (a single value stands for a list of one)."""
    specs = spec if isinstance(spec, list) else [spec or {}]
    if not specs or not all(isinstance(g, dict) for g in specs):
        raise DynaKDError(f"{path}: 'grid' must map options to lists of values, or be a list of such mappings")
    if not all(specs):  # one cell named by nothing, whose folder would be the cells/ folder itself
        raise DynaKDError(f"{path}: 'grid' names no option to sweep; give at least one, e.g. seed: [1, 2, 3]")
    empty = sorted({k for g in specs for k, v in g.items() if v == [] or v is None})
    if empty:  # a product with an empty factor has no cells: that grid would vanish without a word
        raise DynaKDError(f"{path}: grid option(s) {empty} list no values")
    return [{k: v if isinstance(v, list) else [v] for k, v in underscored(g).items()} for g in specs]


def cells(sweep: Sweep) -> list[dict[str, Any]]:
    """Every distinct combination of grid values, aligner axes dropped where the method has no layer term."""
    seen, out = set(), []
    combos = (dict(zip(grid, values)) for grid in sweep.grid for values in itertools.product(*grid.values()))
    for cell in combos:
        method = cell.get("method", sweep.base.get("method", "full"))
        unread = unread_options(method)  # (a layer term's options without one, the logit term's without one, ...)
        if _regression(cell.get("task", sweep.base.get("task", "sst2"))):
            unread |= {"temperature"}  # (its logit term is a squared distance to the teacher's prediction)
        cell = {k: v for k, v in cell.items() if k.split(".")[0] not in unread}
        if method == "task":  # no teacher to supervise rows without labels, no other term to stage against
            cell = {k: v for k, v in cell.items() if k not in TASK_DROPS}
        aligner = cell.get("align.name", sweep.base.get("align", {}).get("name", default_aligner(method)))
        cell = {k: v for k, v in cell.items() if aligner in ALIGNER_OPTIONS.get(k, {aligner})}
        key = cell_key(cell)
        if key not in seen:
            seen.add(key)
            out.append(cell)
    return out


def _regression(task: str) -> bool:
    """Whether ``task`` is known for regression before its data is read (STS-B; a csv task's labels tell at run
    time, where a run says that it does not read the temperature)."""
    try:
        return get_task(task).is_regression
    except DynaKDError:
        return False


def cell_key(cell: dict[str, Any]) -> str:
    """A cell's identity and name: its settings in order, a mapping's keys sorted and a number written as one
    (PyYAML reads ``1e-4`` as a string), so that one setting spelt two ways is one cell, run once."""
    def spelt(value: Any) -> str:
        value = _number(value) if isinstance(value, str) else value
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)

    return ",".join(f"{k}={spelt(v)}" for k, v in sorted(cell.items()))


def _number(text: str) -> Any:
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+|[-+]?(\d+\.\d*|\.\d+)", text):
        return float(text)
    return text


def _slug(key: str) -> str:
    """The cell's folder name; a key too long for one (file systems allow 255 bytes) is cut and ends in its hash."""
    slug = "".join(c if c.isalnum() or c in "-_=." else "_" for c in key.replace(",", "__"))
    if len(slug.encode()) <= 240:
        return slug
    return f"{slug.encode()[:200].decode(errors='ignore')}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


# What a ``task`` run (a cell or the teacher) drops from the sweep's base and grid: the transfer set (no teacher to
# label it), staged training (no other term to stage against) and the hidden-state term (no dynamics to join)
TASK_DROPS = ("transfer_samples", "staged", "hidden_weight")


def _base_for(base: dict[str, Any], method: str) -> dict[str, Any]:
    """The sweep's base as a run of ``method`` reads it: options of terms the method lacks dropped, as ``cells``
    drops them from the grid (a base ``hidden_weight`` for the `full` cells would refuse the `kd` ones)."""
    if method == "task":
        return {k: v for k, v in base.items() if k not in TASK_DROPS}
    if layer_term(method) != "dynamics":
        return {k: v for k, v in base.items() if k != "hidden_weight"}
    return base


def cell_config(sweep: Sweep, cell: dict[str, Any], teacher_dir: str) -> DistillConfig:
    base = _base_for(sweep.base, cell.get("method", sweep.base.get("method", "full")))
    layers = [base, {"teacher": teacher_dir, "progress": False, "overwrite": True}]
    # the cell as one layer: its values side by side, as base's are (two ways of choosing the student in one cell are
    # refused, where a cell's choice replaces base's)
    layers.append(functools.reduce(merge_dicts, [nest(k, v) for k, v in cell.items()], {}))
    layers.append({"output": str(sweep.output / "cells" / _slug(cell_key(cell)))})
    return _no_push(build_config(*layers), sweep)


def teacher_config(sweep: Sweep, seed: int) -> DistillConfig:
    spec = dict(sweep.teacher)
    if spec.pop("per_seed", False):
        spec.pop("seed", None)  # one teacher per cell seed
    model = spec.pop("model", "minilm")  # a packaged checkpoint's alias is resolved where it loads
    run = {"method": "task", "progress": False, "overwrite": True, "model": model, "seed": seed,
           "output": str(sweep.output / f"teacher-seed{seed}")}
    return _no_push(build_config(_base_for(sweep.base, "task"), run, spec), sweep)


def _no_push(cfg: DistillConfig, sweep: Sweep) -> DistillConfig:
    if cfg.push_to_hub:  # from base, teacher, a grid or the smoke settings
        raise _push_refused(sweep)
    return cfg


def _push_refused(sweep: Sweep) -> DynaKDError:
    return DynaKDError(f"sweep {sweep.name}: push_to_hub would push every cell to one repository; push the cell you "
                       "choose with `hf upload REPO CELL_FOLDER`")


def finished(results: Path) -> dict[str, dict[str, Any]]:
    """The record of every finished cell, by cell key. A partial last record (a process stopped while writing it) is
    cut off, so its cell runs again and the next record starts on a line of its own (``mend_results``)."""
    if not results.is_file():
        return {}
    with locked(results.with_name(".results.lock")):  # not while another shard appends a record
        if mend_results(results):
            print(f"[ablate] {results} ended in a partial record (a run stopped while writing it): removed, that "
                  "cell runs again", file=sys.stderr, flush=True)
        records, _ = read_results(results)
    # keyed anew from the cell: a record written before keys sorted a mapping's keys is found by the key of today
    done: dict[str, dict[str, Any]] = {}
    for r in records:  # two records of one cell (spelt two ways before keys were): the first, as the report keeps
        done.setdefault(cell_key(r["cell"]) if isinstance(r.get("cell"), dict) else r["key"], r)
    return done


def mend_results(results: Path) -> bool:
    """Make ``results.jsonl`` end with a whole line before anything is appended (hold its lock): a last record
    without its newline (saved by hand, say) gets one; a partial one is cut off, and True returned."""
    data = results.read_bytes() if results.is_file() else b""
    if not data or data.endswith(b"\n"):
        return False
    cut = data.rfind(b"\n") + 1
    if _record(data[cut:].decode(errors="replace")) is not None:
        with results.open("ab") as f:
            f.write(b"\n")
        return False
    with results.open("r+b") as f:
        f.truncate(cut)
    return True


def _record(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def read_results(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The records of ``results.jsonl`` and whether it ends in a partial one: every record is written whole with its
    newline, so only a process stopped mid-write leaves a last line that does not parse."""
    lines = path.read_text().split("\n")
    partial = bool(lines[-1].strip()) and _record(lines[-1]) is None
    records = []
    for number, line in enumerate(lines if not partial else lines[:-1], 1):
        if not line.strip():
            continue
        record = _record(line)
        if record is None:
            raise DynaKDError(f"{path}: line {number} is not a JSON record; remove that line to run or report its "
                              "cell again")
        records.append(record)
    return records, partial


def check_finished(sweep: Sweep, done: dict[str, dict[str, Any]]) -> None:
    """Refuse a sweep folder whose finished cells or teachers were trained with other settings than the sweep file
    now gives (a changed ``base`` or ``teacher``): the report shows every finished cell, and a resumed sweep would
    mix them with new ones. A cell is compared by the configs its record holds (its own and its teacher's; its own
    else by its folder's ``dynakd.yaml``, for cells finished before records held configs); every teacher folder by
    its own ``dynakd.yaml``."""
    seeds = {teacher_seed(sweep, cell_seed(sweep, c)) for c in [*cells(sweep), *(r["cell"] for r in done.values())]}
    teachers = {seed: teacher_config(sweep, seed) for seed in sorted(seeds)}
    for key, record in done.items():
        cell = record["cell"]
        teacher = teachers[teacher_seed(sweep, cell_seed(sweep, cell))]
        cfg = cell_config(sweep, cell, teacher.output)
        stale = []  # (each setting from what to what, as a run's folder says it)
        if saved := (record.get("config") or (record.get("output") and recorded_config(Path(record["output"])))
                     or recorded_config(Path(cfg.output))):
            # the teacher by its folder's name (teacher-seedS): the sweep folder may be spelt another way now
            # (nor the starting model, which a cell never reads: a base could give it, refused since)
            if keys := [k for k in config_differences(saved, cfg) if k not in SET_BY_THE_SWEEP]:
                stale.append(said_differences(saved, cfg, keys))
            if (was := Path(str(saved.get("teacher"))).name) != Path(teacher.output).name:
                stale.append(f"teacher {was} -> {Path(teacher.output).name}")
        if (saved_teacher := record.get("teacher_config")) and \
                (keys := finetune_config_differences(saved_teacher, teacher)):
            stale.append(said_differences(saved_teacher, teacher, keys, prefix="teacher."))
        if stale:
            raise DynaKDError(
                f"sweep {sweep.name}: cell {key} in {sweep.output} was run with other settings (differs in: "
                f"{', '.join(stale)}); give the sweep another output, or delete {sweep.output} to run the sweep again")
    for teacher in teachers.values():  # the folders, as a resumed sweep would reuse them
        check_teacher(teacher)


def _finished_as_others(sweep: Sweep, todo: list[dict[str, Any]], done: dict[str, dict[str, Any]]
                        ) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The cells still to run, less those whose run a finished cell of another name already is, and those as
    ``{cell: finished cell}``: a grid value the run takes anyway (``align.name: [ot, fixed]`` added beside ``full``'s
    cells, whose aligner is OT; a base setting moved into the grid at its value) named cells of their own, which ran
    again. Compared by the configs the records hold (with the teacher by its folder's name, as ``check_finished``)."""
    saved = [(key, resolved_config(r["config"]), Path(str(r["config"].get("teacher"))).name)
             for key, r in done.items() if isinstance(r.get("config"), dict)]
    if not todo or not saved:
        return todo, {}
    left, runs = [], {}
    for cell in todo:
        cfg = cell_config(sweep, cell, teacher_config(sweep, teacher_seed(sweep, cell_seed(sweep, cell))).output)
        same = next((key for key, old, teacher in saved if teacher == Path(cfg.teacher).name
                     and not [k for k in resolved_differences(old, cfg) if k not in SET_BY_THE_SWEEP]), None)
        if same is None:
            left.append(cell)
        else:
            runs[cell_key(cell)] = same
    return left, runs


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with 1 <= K <= N; ``None`` -> ``(1, 1)`` (the whole grid)."""
    if text is None:
        return 1, 1
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        k, n = 0, 0
    if not 1 <= k <= n:
        raise DynaKDError(f"--shard must be K/N with 1 <= K <= N (e.g. 1/2), got {text!r}")
    return k, n


def ensure_teacher(sweep: Sweep, seed: int) -> tuple[DistillConfig, dict[str, Any]]:
    """The fine-tuned teacher for ``seed`` (or the shared one), trained once and reused from its folder."""
    seed = teacher_seed(sweep, seed)
    cfg = teacher_config(sweep, seed)
    metrics_file = Path(cfg.output) / "metrics.json"
    with locked(sweep.output / f".teacher-seed{seed}.lock"):  # another shard may be training it right now
        if not metrics_file.is_file():
            cfg, resumed = _resumed_if_stopped(cfg)
            print(f"[ablate] fine-tuning the teacher (seed {seed}) -> {cfg.output}{resumed}", flush=True)
            finetune(cfg)
        else:
            check_teacher(cfg)
    return cfg, json.loads(metrics_file.read_text())


def _resumed_if_stopped(cfg: DistillConfig) -> tuple[DistillConfig, str]:
    """A cell's or teacher's run, resumed where an interrupted sweep left a checkpoint of it (it started again from
    step 0: a sweep's runs overwrite their folders), with what to say of it."""
    checkpoint = stopped_here(cfg)
    if checkpoint is None:
        return cfg, ""
    return dataclasses.replace(cfg, overwrite=False), f" (resumed from its {checkpoint.name})"


def check_teacher(cfg: DistillConfig) -> None:
    """Refuse a sweep teacher's folder that was fine-tuned with other settings: its cells would mix two teachers."""
    saved = recorded_config(Path(cfg.output))
    if saved is not None and (stale := finetune_config_differences(saved, cfg)):
        said = said_differences(saved, cfg, stale)
        raise DynaKDError(f"{cfg.output} holds a teacher fine-tuned with other settings (differs in: {said}); delete "
                          "that folder to fine-tune it again, or give the sweep another output")


def cell_seed(sweep: Sweep, cell: dict[str, Any]) -> int:
    return int(cell.get("seed", sweep.base.get("seed", 42)))


def teacher_seed(sweep: Sweep, seed: int) -> int:
    """The seed of the teacher that supervises a cell of ``seed``: its own (``per_seed``) or the shared one's."""
    return seed if sweep.teacher.get("per_seed", False) else int(sweep.teacher.get("seed", 42))


def run_sweep(sweep: Sweep, shard: tuple[int, int] = (1, 1)) -> Path:
    """Run every unfinished cell of this shard; append one JSON line per run to ``results.jsonl``; return that file.

    Shards split the grid by position (cell i belongs to shard ``i % N + 1``), so they never overlap and a rerun
    of any shard finds the same cells; each appends whole lines to the shared ``results.jsonl``. The hub is asked
    once for the sweep's runs (each would wait for it and say it again).
    """
    with hub.offline_for_this_run():
        return _run_sweep(sweep, shard)


def _run_sweep(sweep: Sweep, shard: tuple[int, int]) -> Path:
    k, n = shard
    results = sweep.output / "results.jsonl"
    done = _open_folder(sweep, results)
    every = cells(sweep)
    mine = [c for i, c in enumerate(every) if i % n == k - 1]
    if not mine:  # (it ran nothing without a word)
        print(f"[ablate] shard {k}/{n} holds no cell: the sweep has {len(every)}, fewer than its {n} shards",
              flush=True)
    todo = [c for c in mine if cell_key(c) not in done]
    todo, runs = _finished_as_others(sweep, todo, done)
    part = f" (shard {k}/{n})" if n > 1 else ""
    print(f"[ablate] {sweep.name}{part}: {len(mine) - len(todo)} cells done, {len(todo)} to run -> {sweep.output}",
          flush=True)
    if runs:
        said = "; ".join(f"{key} is {was}" for key, was in list(runs.items())[:3])
        print(f"[ablate] {len(runs)} of the cells done are finished cells of other names, the same runs ({said}"
              f"{', ...' if len(runs) > 3 else ''}): the report shows them under those names", flush=True)
    failed: dict[str, str] = {}
    lost_teachers: dict[int, str] = {}  # a teacher seed whose fine-tune failed: its cells are not tried
    for i, cell in enumerate(todo, 1):
        key, seed = cell_key(cell), teacher_seed(sweep, cell_seed(sweep, cell))
        if seed in lost_teachers:
            failed[key] = lost_teachers[seed]
            print(f"[ablate] cell {key} left: {failed[key]}", file=sys.stderr, flush=True)
            continue
        try:
            teacher, teacher_metrics = ensure_teacher(sweep, cell_seed(sweep, cell))
        except Exception as exc:  # (one seed's teacher, of a per_seed sweep: the other seeds' cells go on)
            failed[key] = lost_teachers[seed] = f"its teacher (seed {seed}) failed: {_failure(exc)}"
            print(f"[ablate] the teacher of seed {seed} failed ({_failure(exc)}): its cells are left, the sweep goes "
                  "on", file=sys.stderr, flush=True)
            continue
        cfg, resumed = _resumed_if_stopped(cell_config(sweep, cell, teacher.output))
        print(f"[ablate] ({i}/{len(todo)}) {key}{resumed}", flush=True)
        start = time.perf_counter()
        try:
            result = distill(dataclasses.replace(cfg, eval_teacher=False))
        except Exception as exc:  # one cell's failure (a rate that diverges, memory) is no other cell's
            failed[key] = _failure(exc)
            print(f"[ablate] cell {key} failed: {failed[key]}; the sweep goes on", file=sys.stderr, flush=True)
            continue
        record = {"key": key, "cell": cell, "method": cfg.method,
                  "align": cfg.align.name if cfg.terms["feature"] else None,  # none for methods without a layer term
                  "student_layers": result.metrics["model"]["layers"], "seed": cfg.seed, "task": cfg.task,
                  "eval": result.metrics["eval"], "teacher_eval": teacher_metrics["eval"],
                  "model": result.metrics["model"], "train": result.metrics["train"],
                  "weights": {k: v for k, v in cfg.to_dict().items()  # spelt out
                              if k in ("alpha", "beta", "hidden_weight") and v is not None},
                  "wall_s": round(time.perf_counter() - start, 1), "output": str(result.output),
                  "versions": result.metrics.get("versions"),  # the code that made it (report.md names it)
                  "config": cfg.to_dict(), "teacher_config": teacher.to_dict()}  # what check_finished compares
        _append(results, record)
    record_failures(sweep.output, failed)
    if failed:
        raise CellsFailed(f"sweep {sweep.name}{part}: {len(failed)} of {len(todo)} cells failed, with no record (a "
                          f"rerun tries them again): {_by_reason(failed)}", results)
    return results


def _open_folder(sweep: Sweep, results: Path) -> dict[str, dict[str, Any]]:
    """Make the sweep's folder ready and return its finished cells by key: finished cells or a teacher of other
    settings than the sweep file now gives are refused (``check_finished``), except in a smoke folder, which starts
    again; ``sweep.yaml`` records the sweep as this run reads it."""
    sweep.output.mkdir(parents=True, exist_ok=True)
    # a smoke folder may be started again (below): shards starting together do that once, under a lock outside it
    with locked(sweep.output.parent / ".smoke.lock") if sweep.smoke else contextlib.nullcontext():
        done = finished(results)
        try:
            check_finished(sweep, done)
        except DynaKDError:
            if not sweep.smoke:
                raise
            print(f"[ablate] the sweep file changed since the last smoke run: {sweep.output} starts again",
                  flush=True)
            shutil.rmtree(sweep.output)
            sweep.output.mkdir(parents=True)
            done = {}
        (sweep.output / "sweep.yaml").write_text(yaml.safe_dump(dataclasses.asdict(sweep)
                                                               | {"output": str(sweep.output)}))
    return done


def _append(results: Path, record: dict[str, Any]) -> None:
    """Append one cell's record to ``results.jsonl`` as a whole line, on disk before the next cell starts."""
    with locked(results.with_name(".results.lock")):  # shards append whole lines
        mend_results(results)  # a shard stopped mid-write since this one started
        with results.open("a") as f:
            f.write(jsonfile.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _by_reason(failed: dict[str, str]) -> str:
    """The failed cells grouped by why (one reason, a missing column say, was said once per cell): up to five reasons,
    up to three cells each."""
    by_reason: dict[str, list[str]] = {}
    for key, why in failed.items():
        by_reason.setdefault(why, []).append(key)
    listed = "; ".join(f"{', '.join(keys[:3])}{f' and {len(keys) - 3} more' if len(keys) > 3 else ''} ({why})"
                       for why, keys in list(by_reason.items())[:5])
    return listed + (f"; and {len(by_reason) - 5} more reasons (above)" if len(by_reason) > 5 else "")


FAILURES = "failed.json"  # the cells whose last run failed, with why: report.md lists those still without a record


def record_failures(folder: Path, failed: dict[str, str]) -> None:
    """Add this ablate's failed cells to the sweep folder's ``failed.json`` (other shards' too: under a lock); a cell
    that has a record since is no failure (``report`` reads them so), and one that failed again says its new reason."""
    path = folder / FAILURES
    with locked(folder / f".{FAILURES}.lock"):
        try:
            known = json.loads(path.read_text()) if path.is_file() else {}
        except ValueError:
            known = {}
        if failed or known:
            atomic.write_text(path, json.dumps((known if isinstance(known, dict) else {}) | failed, indent=1) + "\n")


# What a run's error advises a command to do, as a sweep does it: its cells run with overwrite into folders of the
# sweep's choosing, and ablate has no data flags
SWEEP_ADVICE = {
    "pass --data-dir DIR": "set data_dir: DIR in the sweep's base",
    "(--data-dir is a folder holding": "(the base's data_dir is a folder holding",
    "--dev-split 0.5 trains on half of it": "dev_split: 0.5 in the sweep's base trains on half of it",
    "or pass --teacher-cache off": "or set teacher_cache: off in the sweep's base",
    "with overwrite or into another output folder (a resumed run would repeat the step; the checkpoint is there to "
    "inspect)": "with other settings in the sweep's grid (a rerun of the same cell fails alike; the checkpoint is "
    "there to inspect)",
}


def _failure(exc: Exception) -> str:
    """Why a run of the sweep failed, in one line (the type of an error not DynaKD's own, whose stack is printed
    for the bug report); the failed run's memory is freed for the next (its model and trainer hold each other, so
    only a collection frees them, and on a GPU the next run might fail for the memory they hold)."""
    import torch

    why = first_line(exc) if isinstance(exc, DynaKDError) else f"{type(exc).__name__}: {first_line(exc)}"
    for said, in_a_sweep in SWEEP_ADVICE.items():  # (a command's advice, as a sweep file takes it)
        why = why.replace(said, in_a_sweep)
    if not isinstance(exc, DynaKDError):
        traceback.print_exc()
    traceback.clear_frames(exc.__traceback__)  # (the frames of the failed run hold its model while exc lives)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return why


class CellsFailed(DynaKDError):
    """Cells of a sweep failed; the others ran and their records are in ``results``."""

    def __init__(self, message: str, results: Path):
        super().__init__(message)
        self.results = results
