"""``dynakd report RUN [RUN ...]`` (or a folder holding run folders): runs side by side, a markdown table a task,
printed.

For runs made by hand (``distill``, ``finetune``) rather than by a sweep, which ``report DIR`` summarises from its
``results.jsonl``: each row is one folder's ``metrics.json`` (the student's last-epoch dev scores x100, the teacher's
beside them where the run scored it, its depth, parameters, steps and training time) and the settings in which the
runs' ``dynakd.yaml`` differ, each a column (the teacher and the student first). One seed a row: no mean, sd or
interval (a sweep gives those).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..card import parameters_said
from ..config import ALIGNER_READS
from ..errors import DynaKDError
from ..rundir import (
    CONFIG_NAME,
    MODEL_SETTINGS,
    is_run_folder,
    is_unset,
    not_read,
    read_metrics,
    recorded_config,
    resolved_config,
    run_differences,
)
from .report import dotted_value, heading, score_key, shown_scores

# Differing settings shown as columns, these first (what a row's scores most depend on), the rest named under the
# table past SHOWN_SETTINGS. Left out: the run's length, which the steps column gives, and the student's depth, which
# the layers column gives.
FIRST_SETTINGS = ("teacher", "student", "model", "student_layer_ids", "lr", "align.name", "dynamics.pooling")
NOT_SHOWN = ("epochs", "max_steps", "student_layers")
SHOWN_SETTINGS = 6


def compare_runs(paths: list[Path]) -> str:
    """The markdown tables of the runs in ``paths`` (run folders), one a task, with notes under each."""
    seen: set[Path] = set()  # (a run named twice, as runs/kd and runs/kd/: one row)
    paths = [p for p in paths if not (p.resolve() in seen or seen.add(p.resolve()))]
    runs = [_run(p) for p in paths]
    for run, name in zip(runs, _names(paths)):
        run["name"] = name
    tasks = sorted({_task(r) for r in runs})
    if len(tasks) == 1:
        return _table([r for r in runs])
    return "\n".join(f"## {task}\n\n" + _table([r for r in runs if _task(r) == task]) for task in tasks)


def _task(run: dict[str, Any]) -> str:
    """What a table holds: a task, and for task 'dataset' the dataset (one label kind, one score; every such run is
    task 'dataset')."""
    task = str(run["metrics"].get("task"))
    dataset = run["metrics"].get("dataset") or run["config"].get("dataset")
    return f"{task} {dataset}" if task == "dataset" and dataset else task


def _table(runs: list[dict[str, Any]]) -> str:
    """One task's runs: their table and its notes."""
    task = str(runs[0]["metrics"].get("task"))
    metric, others = shown_scores([{"task": task, "eval": r["metrics"].get("eval", {})} for r in runs])
    scores = (metric, *others)
    # (a setting that differs only where a method reads none, kd's aligner, says no more than the method column)
    every = [k for k in run_differences([r["config"] for r in runs])
             if k != "method" and len({_setting(r["config"], k) for r in runs} - {"-"}) > 1]
    differ = [k for k in every if k not in NOT_SHOWN]  # (those the layers and steps columns show, apart)
    differ.sort(key=lambda k: FIRST_SETTINGS.index(k) if k in FIRST_SETTINGS else len(FIRST_SETTINGS))
    shown, unshown = differ[:SHOWN_SETTINGS], differ[SHOWN_SETTINGS:]
    teacher = any(isinstance(r["metrics"].get("teacher_eval"), dict) for r in runs)
    # (the teacher's every score beside the runs': MNLI's mismatched, STS-B's Spearman were left out)
    head = ["run", "method", *shown, *map(heading, scores)] \
        + ([f"teacher {heading(k)}" for k in scores] if teacher else []) + ["layers", "parameters", "steps", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        m, model, train = r["metrics"], _model(r), _train(r)
        # (a fine-tuned teacher's run is method task in its dynakd.yaml: named by its command)
        method = "finetune" if m.get("command") == "finetune" else str(r["config"].get("method", "?"))
        cells = [r["name"], method]
        cells += [_setting(r["config"], key) for key in shown]
        cells += [_score(m.get("eval"), k) for k in scores]
        cells += [_score(m.get("teacher_eval"), k) for k in scores] if teacher else []
        cells += [str(model.get("layers", "")), _millions(model.get("parameters")), str(train.get("steps", "")),
                  _seconds(train.get("runtime_s"))]
        lines.append("| " + " | ".join(cells) + " |")
    notes = ["Scores are each run's last evaluation x100 (`metrics.json`), one seed a row: `dynakd ablate` runs "
             "seeds and gives a mean, sd and paired interval."]
    if len(runs) > 1 and not differ and len({r["config"].get("method") for r in runs}) == 1:
        # (said as they are: "but in their length" was said of runs of one length, or of other depths)
        apart = ", ".join(f"`{k}`" for k in every)
        # (epochs 1 and max_steps 2 over 2 steps a pass train alike: the layers and steps columns say so)
        alike = len({(str(_model(r).get("layers")), str(_train(r).get("steps"))) for r in runs}) == 1
        notes.append(f"The runs' settings (`dynakd.yaml`) differ only in {apart} (the layers and steps columns)."
                     if every and not alike else "The runs' settings (`dynakd.yaml`) do not differ in what they train.")
    if unshown:
        notes.append("They also differ in " + ", ".join(f"`{k}`" for k in unshown) + ".")
    rows = sorted({str(r["metrics"].get("max_eval_samples", "all")) for r in runs})
    if len(rows) > 1:  # (a cap at or above the split is no cap in metrics.json: the whole split)
        notes.append(f"The runs were scored on different rows (max_eval_samples {', '.join(rows)}): their scores are "
                     "not of the same examples.")
    return "\n".join(lines) + "\n\n" + "".join(f"- {n}\n" for n in notes)


def _model(run: dict[str, Any]) -> dict[str, Any]:
    """A run's ``metrics.json`` description of its model (``{}`` where it has none readable)."""
    model = run["metrics"].get("model")
    return model if isinstance(model, dict) else {}


def _train(run: dict[str, Any]) -> dict[str, Any]:
    """A run's ``metrics.json`` record of its training (``{}`` where it has none readable)."""
    train = run["metrics"].get("train")
    return train if isinstance(train, dict) else {}


def runs_in(folder: Path) -> list[Path]:
    """The finished run folders directly inside ``folder``, by name."""
    return sorted(p for p in folder.iterdir() if is_run_folder(p)) if folder.is_dir() else []


def _run(path: Path) -> dict[str, Any]:
    metrics = read_metrics(path)
    if not path.is_dir():
        raise DynaKDError(f"{path} is not a folder: report reads a sweep's folder, run folders or a bench's JSON file")
    if metrics is None:
        raise DynaKDError(f"{path} holds no readable metrics.json: not a finished run (report compares run folders "
                          "that distill or finetune wrote)")
    saved = recorded_config(path)
    if saved is None:
        raise DynaKDError(f"{path} holds no {CONFIG_NAME}: not a folder DynaKD wrote")
    return {"metrics": metrics, "config": resolved_config(saved)}


def _names(paths: list[Path]) -> list[str]:
    """Each run's folder name, or its path where two share a name."""
    names = [p.name or p.resolve().name for p in paths]
    return [str(p) if names.count(n) > 1 else n for p, n in zip(paths, names)]


def _setting(config: dict[str, Any], dotted: str) -> str:
    """The run's value of a setting: ``-`` where its method reads none (``kd``'s aligner) or its aligner does not
    (OT's ``align.tau``), ``unset`` where it is; a model its command took none of (a fine-tune's teacher) ``none``;
    a student of the teacher's layers as such."""
    group, _, key = dotted.partition(".")
    if group in not_read(config):
        return "-"
    if group == "align" and key and key != "name" and key not in ALIGNER_READS.get(
            (config.get("align") or {}).get("name"), {key}):  # (another aligner's setting: noted as unread when run)
        return "-"
    value = dotted_value(config, dotted)
    if is_unset(dotted, value):
        if dotted == "student" and config.get("teacher"):
            return "teacher's layers"  # (built from the teacher's layers: student_layers says how many)
        return "none" if dotted in MODEL_SETTINGS else "unset"  # (a fine-tune's teacher, a distillation's model)
    if dotted in MODEL_SETTINGS and isinstance(value, str):  # (a folder by its name: paths make wide columns)
        return Path(value).name or value
    if isinstance(value, dict) and {"kind", "start", "end"} <= set(value):  # a weight's schedule (schedules.py)
        said = f"{value['start']:g}" if value["kind"] == "constant" else \
            f"{value['kind']} {value['start']:g} -> {value['end']:g}"
        return said + (f", warmup {value['warmup']:g}" if value.get("warmup") else "")
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return value if isinstance(value, str) else json.dumps(value)


def _score(ev: Any, metric: str) -> str:
    key = score_key(ev, metric)
    if key is None:
        return ""
    value = ev[key]
    return "nan" if value is None else f"{100.0 * value:.2f}"


def _millions(n: Any) -> str:
    return parameters_said(n) if isinstance(n, (int, float)) else ""


def _seconds(x: Any) -> str:
    return "" if not isinstance(x, (int, float)) or math.isnan(x) else f"{x:.1f}"
