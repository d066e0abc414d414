"""What a DynaKD run folder lends a later command where the command is silent: a teacher's run lends ``distill``
its task, data and input length (``teacher_task``); a scored run lends ``evaluate`` its own
(``evaluation_defaults``)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .config import DATASET_KEYS, DistillConfig
from .data.tasks import get_task, rows_not_glues
from .distributed import is_first_process, note
from .errors import DynaKDError
from .notes import say, tell
from .rundir import (
    DATA_PATHS,
    lent_record,
    path_exists,
    read_from_here,
    read_metrics,
    recorded_config,
    recorded_settings,
    same_file,
    with_its_run,
    without_unread_data,
)

T = TypeVar("T")


def _print(line: str) -> None:
    """A line of what is lent (``notes.tell``), or a note (``notes.say``)."""
    if line.startswith("note: "):
        say(line.removeprefix("note: "))
    else:
        tell(line)


def _says(value: Any) -> bool:
    """Whether a recorded setting says something a run can lend: not unset, off or an empty list."""
    return value is not None and value is not False and value != []


def teacher_task(teacher: str | None, given: dict[str, Any], say: Callable[[str], None] = _print) -> dict[str, Any]:
    """What a DynaKD-trained teacher's run lends a ``distill`` command: its task when the command names none (rather
    than the default task, which a teacher of another task would be distilled on with a note), and for that task its
    data when the command names none of its own: the files or GLUE folder (those found, ``lent_record``), text and label
    columns, SQuAD's training articles, and the dev rows a ``--dev-split`` run held out (the student must not train
    on them either); and, whatever the data, its input length and QA windows where the command gives none (the
    student reads the inputs the teacher learned, and the teacher's score is its own). Says what it lends (``say``)."""
    if not teacher:
        return {}
    given = _defaults_said(given)
    try:
        saved = lent_record(os.path.expanduser(str(teacher)))
    except OSError:  # an unreadable folder: loading the model names it
        return {}
    made = "fine-tuned" if saved.get("method", "task") == "task" else "distilled"  # (a distilled student's folder)
    default = dataclasses.asdict(DistillConfig())  # (defaults are not lent: the command has them anyway)
    saved = {k: v for k, v in saved.items()
             if k == "task" or (_says(v) and v != default.get(k))}
    try:
        task = get_task(str(saved["task"])).name
        if given.get("task") is not None and get_task(str(given["task"])).name != task:
            return {}  # another task: none of the teacher's data
    except (KeyError, DynaKDError):  # not a DynaKD run, or a task name validation will refuse with its own message
        return {}
    lent = {} if given.get("task") is not None else {"task": task}
    # data of the command's own, not the teacher's spelt again (which still lends the rows a dev split held out)
    if not any(given.get(k) not in (None, False) and not _same_place(k, given[k], saved.get(k)) for k in _DATA_PLACES):
        # data_seed: the rows a dev split held out, or the synthetic corpus the teacher learned
        keys = [k for k in RUN_DATA if k != "task"] + (["data_seed"] if {"dev_split", "synthetic"} & set(saved) else [])
        lent |= {k: saved[k] for k in (*keys, "dev_split") if k in saved and k not in given}
        _check_cut(f"the teacher {teacher}", saved, given, "the student would be scored on rows the teacher trained on")
        # (not lent: a student often learns from more rows than its teacher did; but the teacher's score beside the
        # student's is then of other rows than its own metrics.json's)
        subsets = {k: saved[k] for k in ("max_train_samples", "max_eval_samples") if saved.get(k) and k not in given}
        if "max_eval_samples" not in _scores_record(os.path.expanduser(str(teacher))):  # (the whole split: the same)
            subsets.pop("max_eval_samples", None)
    else:
        subsets = {}
    lent |= _windows(saved, given)
    lost = _take_lost(lent, given)
    paths, flags = _paths_and_flags(lost, saved)
    if lost and "dev_split" in lent:  # another copy (the hub's) may order rows otherwise: the cut would differ
        raise DynaKDError(f"the teacher {teacher} was {made} on part of {paths} (--dev-split {lent['dev_split']}), "
                          "not found from here (a relative path counts from the folder it ran in); give "
                          f"{flags} so that the student does not train on the rows the teacher held out")
    _check_own_files_lost(f"the teacher {teacher} was {made}", os.path.expanduser(str(teacher)), task, lost, paths,
                          flags, "the hub's GLUE rows are not the teacher's")
    if is_first_process():
        if said := [f"{k} {v}" for k, v in lent.items() if k != "data_seed"]:
            say(f"distill: {', '.join(said)} (as the teacher {teacher} was {made})")
        if lost:
            say(f"note: the teacher {teacher} was {made} on {paths}, not found from here (a relative path "
                f"counts from the folder it ran in); give {flags}")
        _say_read_here(f"the teacher {teacher}", os.path.expanduser(str(teacher)), lent, say)
        # (the subset is drawn with data_seed, lent only with a dev split or the synthetic corpus: said where needed)
        seed = saved.get("data_seed", DistillConfig.data_seed)
        same = "" if seed == DistillConfig.data_seed or "data_seed" in {*given, *lent} else f" --set data_seed={seed}"
        for key, n in subsets.items():
            done, rows, flag = _SUBSETS[key]
            say(f"note: the teacher {teacher} was {done.format(made=made)} a seeded subset of {n} {rows} rows "
                f"({flag} {n}); this run reads them all (give {flag} {n}{same} for the same rows)")
    return lent


def _say_read_here(run: str, folder: str | Path, lent: dict[str, Any], say: Callable[[str], None]) -> None:
    """Say which lent relative paths are read here, not found in the folder the run ran in (``read_from_here``): a
    file or folder of the same name here need not be the run's."""
    where, here = read_from_here(without_unread_data(recorded_config(folder) or {}), folder)
    if keys := [k for k in here if k in lent]:
        say(f"note: {run} ran in {where}, {holds_no(keys, lent)}")


def holds_no(keys: list[str], lent: dict[str, Any]) -> str:
    """``"which holds no train_file a.csv now: the one of that name here is read (give --train-file for other
    files)"``: the end of the note of paths read from here (``read_from_here``)."""
    paths, flags = _paths_and_flags(keys, lent)
    those = "the one of that name here is" if len(keys) == 1 else "those of their names here are"
    cut = "" if lent.get("dev_split") is None else (f"; the dev rows --dev-split {lent['dev_split']} held out are cut "
                                                    "from it: a copy of other rows or order holds out others")
    return f"which holds no {paths} now: {those} read (give {flags} for other files){cut}"


def _check_own_files_lost(run: str, folder: str | Path, task: str, lost: list[str], paths: str, flags: str,
                          harm: str) -> None:
    """Refuse a run's GLUE folder not found from here where its files were not GLUE's own (its ``metrics.json``'s
    ``eval_split_rows``, recorded since 2026-12-07): the hub's GLUE, which the command falls back to for a copy of
    GLUE's files (with a note), holds other rows (``harm`` says so)."""
    spec = get_task(task)
    if "data_dir" not in lost or not spec.reads_data_dir:
        return
    # (a checkpoint's: its run's, as its settings are)
    recorded = (_scores_record(where).get("eval_split_rows") for where in with_its_run(folder))
    rows = next((r for r in recorded if r is not None), None)
    if isinstance(rows, dict) and (own := rows_not_glues(spec, rows)):
        raise DynaKDError(f"{run} on {paths}, not found from here (a relative path counts from the folder it ran in), "
                          f"whose files were not GLUE's ({own}): give {flags} ({harm})")


# How the teacher used each seeded subset, and the flag that asks for it
_SUBSETS = {"max_train_samples": ("{made} on", "training", "--max-train-samples"),
            "max_eval_samples": ("scored on", "evaluation", "--max-eval-samples")}


def _check_cut(run: str, saved: dict[str, Any], given: dict[str, Any], harm: str) -> None:
    """Refuse a command that cuts the run's data with another dev split than the run's: another fraction, or the same
    one with another ``data_seed`` (which chooses the held-out rows too), would hold out other rows (``harm`` says
    what follows). ``saved``: the run's recorded config (a ``data_seed`` at its default may be left out of it)."""
    split = saved.get("dev_split")
    if split is None:
        return
    if given.get("dev_split") is not None and given["dev_split"] != split:
        raise DynaKDError(f"{run} held out {split} of dev; dev_split {given['dev_split']} holds out other rows, so "
                          f"{harm}: leave dev_split out or give {split}")
    seed = saved.get("data_seed", DistillConfig.data_seed)
    if given.get("data_seed") is not None and given["data_seed"] != seed:
        raise DynaKDError(f"{run} held out {split} of dev as data_seed {seed} chose it; data_seed "
                          f"{given['data_seed']} holds out other rows, so {harm}: leave data_seed out or give {seed}")


def _windows(saved: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The run's input length and QA windows (``EVAL_SETTINGS`` but the cut) where the command gives none; its
    window overlap only with its length (it was chosen for that length)."""
    lent = {k: saved[k] for k in EVAL_SETTINGS if k in saved and k not in _CUT and k not in given}
    if given.get("max_seq_length") not in (None, saved.get("max_seq_length")):
        lent.pop("doc_stride", None)
    return lent


def _take_lost(lent: dict[str, Any], given: dict[str, Any]) -> list[str]:
    """The recorded data paths in ``lent`` not found from here (relative ones count from where the run ran), taken
    out of it, with SQuAD's training articles when their file is neither lent nor given (a command's
    ``--train-file`` in place of the run's, not found from here, still cuts the articles the run held out)."""
    lost = [k for k in DATA_PATHS if k in lent and not path_exists(lent[k])]
    for k in lost:
        del lent[k]
    if "train_file" not in lent and given.get("train_file") is None:
        lent.pop("train_articles", None)
    return lost


def _paths_and_flags(keys: list[str], saved: dict[str, Any]) -> tuple[str, str]:
    """``"train_file a.csv, ..."`` and ``"--train-file, ..."``: what a run recorded, and the flags that give it."""
    return ", ".join(f"{k} {saved[k]}" for k in keys), ", ".join("--" + k.replace("_", "-") for k in keys)


# What a run folder's own dynakd.yaml gives `evaluate` unless the command says otherwise: how inputs were cut, and
# which dev rows a --dev-split run held out (it trained on the rest) ...
EVAL_SETTINGS = ("max_seq_length", "doc_stride", "max_answer_length", "n_best", "dev_split", "data_seed",
                 "pad_to_multiple_of")
# ... and, unless the command names another task, the run's task and its data (a SQuAD run's articles with its file)
RUN_DATA = ("task", "data_dir", "train_file", "validation_file", "train_articles", *DATASET_KEYS, "text_columns",
            "label_column", "synthetic")
_DATA_PLACES = ("data_dir", "train_file", "validation_file", "dataset", "synthetic")
_CUT = ("dev_split", "data_seed")  # which dev rows a --dev-split run held out


def _defaults_said(given: dict[str, Any]) -> dict[str, Any]:
    """``given`` with each key the command unsets (``--set task=``) at its default: the command says that value."""
    defaults = dataclasses.asdict(DistillConfig())
    return {k: defaults.get(k) if v is None else v for k, v in given.items()}


def lent_settings(command: str, given: dict[str, Any], say: Callable[[str], None] = _print) -> dict[str, Any]:
    """What a DynaKD run folder lends ``command`` where ``given`` (the settings it gives itself: flags, --config and
    --set, or a Python dict config) is silent: ``distill``, its teacher's run (``teacher_task``); ``evaluate``, the
    scored run's (``evaluation_defaults``); nothing to the others. ``say`` gets what it lends, in lines."""
    if command == "distill":
        return teacher_task(given.get("teacher"), given, say)
    if command == "evaluate" and given.get("model"):
        return evaluation_defaults(os.path.expanduser(str(given["model"])), given, say)
    return {}


def lent_config(command: str, given: dict[str, Any], build: Callable[[dict[str, Any]], T]) -> T:
    """``build(lent)``, ``lent`` what a run folder lends ``command`` (``lent_settings``), saying what it lends once
    the config is built: a config refused for a reason of its own says so alone, not after lines on what was lent."""
    said: list[str] = []
    cfg = build(lent_settings(command, given, said.append))
    for line in said:
        _print(line)
    return cfg


def evaluation_defaults(
    folder: str | Path, given: dict[str, Any], say: Callable[[str], None] = _print
) -> dict[str, Any]:
    """The settings the run saved in ``folder`` lends ``evaluate`` where the command (``given``: the settings it
    gives itself) is silent: ``EVAL_SETTINGS``, and the run's task and data unless the command names another task.
    A command that says where its data is takes none of the run's places (nor, for its own csv/json files, the run's
    dev split); a recorded path not found from here is not lent (relative paths count from where the run ran).
    Nothing for a folder DynaKD did not write; says what it lends besides the input settings but its input length
    (where not the default) and window overlap (``say``)."""
    given = _defaults_said(given)
    saved = lent_record(folder)
    saved = {k: v for k, v in saved.items() if _says(v)}
    lent = _windows(saved, given) | {k: saved[k] for k in _CUT if k in saved}
    try:
        task = get_task(str(saved["task"]))  # (a folder from before task names were normalised says "SST-2")
    except (KeyError, DynaKDError):
        return lent
    uncut = {k: v for k, v in lent.items() if k not in _CUT}
    if given.get("task") is not None and get_task(str(given["task"])).name != task.name:
        return uncut  # the cut is of the run's own dev set
    own_data = any(given.get(k) not in (None, False) and not _same_place(k, given[k], saved.get(k))
                   for k in _DATA_PLACES)
    if own_data:
        _check_not_the_cut_file(str(folder), saved, given)
    if own_data and (task.is_user_data or given.get("synthetic")):  # the run's held-out part means nothing there
        lent = uncut
    data = {k: saved[k] for k in RUN_DATA if k in saved and k not in given
            and not (own_data and k in (*_DATA_PLACES, *DATASET_KEYS, "train_articles"))
            and (task.reads_dataset or k not in DATASET_KEYS)}  # (another task's record holds their defaults)
    if "task" not in given:
        data["task"] = task.name
    if "dev_split" in lent:
        _check_cut(str(folder), saved, given, "the score would count rows it trained on")
    lost = _take_lost(data, given)
    if lost and "dev_split" in lent and "dev_split" not in given:  # another copy (the hub's) may order rows otherwise
        paths, flags = _paths_and_flags(lost, saved)
        raise DynaKDError(f"{folder} was trained on part of {paths} "
                          f"(--dev-split {lent['dev_split']}), not found from here (a relative path counts from the "
                          f"folder the run ran in); give {flags} so the part it held out is cut from the same rows")
    _check_own_files_lost(f"{folder} was trained", folder, task.name, lost, *_paths_and_flags(lost, saved),
                          "the hub's GLUE rows are not the run's")
    # (its input length too where not the default, as distill's line says it: a QA run's windows were said by their
    # overlap alone)
    said = [f"{k} {v}" for k, v in {**data, **lent}.items()
            if (k in ("task", "dev_split", "train_articles", "doc_stride", "dataset_config", "eval_split",
                      *_DATA_PLACES)
                or k == "max_seq_length" and v != DistillConfig.max_seq_length) and k not in given]
    if is_first_process():
        if said:
            say(f"evaluate: {', '.join(said)} (as {folder} was trained)")
        if task.reads_dataset and not own_data and (lent | given).get("dev_split") is None:
            _note_trained_split(str(folder), saved, given, say)
        if task.is_qa and saved.get("doc_stride") and "doc_stride" not in {*given, *lent}:  # (another length's)
            say(f"note: {folder} was trained on windows of {saved.get('max_seq_length')} tokens overlapping by "
                f"{saved['doc_stride']}; these windows of {given.get('max_seq_length')} overlap by their length's "
                f"default (give --doc-stride {saved['doc_stride']} for the run's overlap)")
        # (a cap its metrics.json does not record covered the whole split: the same rows)
        if saved.get("max_eval_samples") and "max_eval_samples" not in given \
                and "max_eval_samples" in _scores_record(folder):
            n = saved["max_eval_samples"]
            say(f"note: {folder} was scored on a seeded subset of {n} evaluation rows (--max-eval-samples {n}); "
                f"this scores them all (give --max-eval-samples {n} for the same rows)")
        # (training rows are read only where the run cut its evaluation rows from them: SQuAD's articles)
        if needed := [k for k in lost if k != "train_file" or "train_articles" in saved]:
            paths, flags = _paths_and_flags(needed, saved)
            say(f"note: {folder} was trained on {paths}, not found from here (a relative path counts from the "
                f"folder the run ran in); give {flags}")
        # (evaluate reads a training file only where its evaluation rows come from it: a dev split, SQuAD's articles)
        read = {k: v for k, v in data.items() if k != "train_file" or {"train_articles", "dev_split"} & {*saved, *lent}}
        _say_read_here(str(folder), folder, lent | read, say)
    return {**lent, **data}


def _note_trained_split(run: str, saved: dict[str, Any], given: dict[str, Any], say: Callable[[str], None]) -> None:
    """Say so where the split a dataset run is scored on holds the rows it trained on: the same split, or one of the
    two the whole split the other cuts (``train`` beside ``train[:90%]``; two cuts of it may be apart)."""
    train = str(saved.get("train_split") or DistillConfig.train_split)
    scored = str(given.get("eval_split") or saved.get("eval_split") or DistillConfig.eval_split)
    whole = {split.split("[")[0].strip() for split in (train, scored)}
    if scored == train or (len(whole) == 1 and ("[" not in train or "[" not in scored)):
        say(f"note: {run} was trained on split {train} of its dataset; --eval-split {scored} scores rows it trained "
            "on")


def _scores_record(folder: str | Path) -> dict:
    """The run's ``metrics.json`` (how its scores came about: ``max_eval_samples`` where they are of a subset), or
    what its config says where the run has none yet, or none readable (``rundir.read_metrics``)."""
    record = read_metrics(folder)
    return {"max_eval_samples": None} if record is None else record


_FILES = ("data_dir", "train_file", "validation_file")


def _check_not_the_cut_file(run: str, saved: dict[str, Any], given: dict[str, Any]) -> None:
    """Refuse data given under another key than the run's that is the file (or folder) the run cut its evaluation
    rows from (``dev_split``, SQuAD's ``train_articles``): taken as the command's own data, it was scored whole,
    rows the run trained on included, without a word (``--validation-file`` naming the run's ``--train-file``)."""
    cut = [f"--{k.replace('_', '-')} {saved[k]}" for k in ("dev_split", "train_articles") if saved.get(k) is not None]
    if not cut:
        return
    for key in _FILES:
        mine = given.get(key)
        for other in _FILES:
            theirs = saved.get(other)
            if other != key and mine and theirs and path_exists(theirs) and same_file(str(mine), str(theirs)):
                raise DynaKDError(f"{mine} is the {other.replace('_', ' ')} {run} trained on part of "
                                  f"({', '.join(cut)}): scored whole, the score would count rows it trained on; "
                                  f"leave --{key.replace('_', '-')} out to score the part it held out, or give a file "
                                  "of other rows")


def _same_place(key: str, given: Any, saved: Any) -> bool:
    """Whether the command's data setting names the run's: equal, the same file or folder spelt otherwise, or a path
    that stands in for a recorded one not found from here (the note of ``evaluation_defaults`` asks for it)."""
    if given == saved:
        return True
    if key == "dataset" and saved is not None:  # (a local folder is recorded by its absolute path: checks)
        if not os.path.isdir(os.path.expanduser(str(given))):
            return False  # a hub name given is other data
        # a recorded folder not found here is stood in for by the folder given, as a recorded file is (below)
        return (os.path.isabs(str(saved)) and not path_exists(saved)) or same_file(str(given), str(saved))
    if key not in DATA_PATHS or saved is None:
        return False
    if not path_exists(saved):
        return True
    return same_file(str(given), str(saved))




def note_other_task(folder: str | Path, task: str, role: str) -> None:
    """Say so when the model in ``folder`` was trained by DynaKD on another task than ``task`` (allowed: a related
    task may be the point, but a teacher of another task is more often a slip)."""
    trained = recorded_settings(folder, ("task",)).get("task")
    try:  # (a folder from before task names were normalised says "SST-2")
        trained = get_task(str(trained)).name if trained else trained
    except DynaKDError:
        pass
    if trained and trained != task:
        note(f"the {role} {folder} was trained on task {trained}, this run is on {task}")
