"""The run folder: refuse to mix runs, record the resolved config and the metrics."""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from . import atomic, jsonfile, locks, packaged
from .cache import cache_blocker
from .checkpoints import PREFIX, check_checkpoint, is_checkpoint_name, latest_checkpoint, remove_partial
from .config import DistillConfig, build_config, existing_part, load_yaml, save_config, underscored, unread_options
from .data.tasks import TaskSpec, get_task
from .distributed import is_first_process
from .errors import DynaKDError

CONFIG_NAME = "dynakd.yaml"
RUN_LOCK = ".dynakd.lock"  # hidden: not published (hub.PUSH_IGNORE), nor a file of the run's or the user's
# Keys that do not change what a run trains (a compiled run gives the eager run's losses to 1e-4; evaluating more often
# changes no weight: e2e/test_resume.py), or that a resume may need to change: a cache's float16 features move the
# weights in the 4th digit, but a full disk may be why the teacher cache is off now (a resume that switches it says so).
_COSMETIC = {"output", "overwrite", "progress", "logging_steps", "teacher_cache", "eval_teacher", "eval_batch_size",
             "eval_steps", "resume", "save_steps", "keep_checkpoints", "torch_compile", "torch_compile_mode",
             "cuda_graphs", "dataloader_num_workers", "push_to_hub", "hub_private"}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = (set(old) | set(new)) - _COSMETIC - (not_read(old) & not_read(new))
    return sorted(k for k in keys if not same_setting(k, old.get(k), new.get(k)))


def not_read(cfg: dict[str, Any]) -> set[str]:
    """The settings a run's method never reads (``unread_options``): two runs that differ only in these train alike."""
    return unread_options(cfg.get("method"))


def same_setting(key: str, old: Any, new: Any) -> bool:
    """Equal, or the same model, file or folder spelt otherwise (``runs/t``, ``runs/t/``, ``./runs/t``, its absolute
    path): a resumed run is the run it was, however a script spells its paths."""
    old, new = _model(key, old), _model(key, new)
    if old == new:
        return True
    return key in ("model", "teacher", "student", *_PATHS) and isinstance(old, str) and isinstance(new, str) \
        and same_file(old, new)


def same_file(a: str, b: str) -> bool:
    """Whether two paths (``~`` expanded) name one existing file or folder, however each is spelt."""
    try:
        return _exists(a) and _exists(b) and os.path.samefile(os.path.expanduser(a), os.path.expanduser(b))
    except (OSError, ValueError):
        return False


def _model(key: str, value: Any) -> Any:
    """A checkpoint as loaded: a packaged checkpoint's alias and its folder are one model (a run folder written
    before the alias stayed in configs holds the folder)."""
    return packaged.resolve(value) if key in ("model", "teacher", "student") and isinstance(value, str) else value


def note_not_read(cfg: DistillConfig, given: dict[str, Any]) -> None:
    """Say which of the settings a command gave its method does not read (a sweep's base may give them all its
    methods: they are not refused)."""
    settings, defaults = cfg.to_dict(), build_config({"method": cfg.method}).to_dict()
    # (a run's saved dynakd.yaml given as --config spells out every key, at the defaults: those say nothing)
    if (unread := sorted(k for k in not_read(settings) & set(given) if settings[k] != defaults[k])) \
            and is_first_process():
        print(f"note: method {cfg.method} does not read {', '.join(unread)}: the run trains as it would without",
              flush=True)


def _resolved(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config with its defaults resolved as today's code resolves them (a folder written before the feature
    weight was spelt out, ``beta: null``, compares by the weight it used); as saved if it no longer parses."""
    try:
        return build_config({k: v for k, v in saved.items() if k not in _COSMETIC}).to_dict()
    except DynaKDError:
        return saved


# Options a ``task`` fine-tune never reads (the distillation terms; it does read task_weight and balance, which
# scale its one term), and the starting checkpoint, which is compared by name: an alias resolves to a different path
# in every environment.
_NOT_READ_BY_FINETUNE = {"model", "teacher", "student", "student_layers", "student_layer_ids", "method", "temperature",
                         "alpha", "beta", "staged", "hidden_weight", "dynamics", "align"}


def recorded_config(folder: str | Path) -> dict[str, Any] | None:
    """The config a run saved in ``folder`` (``dynakd.yaml``; for a ``checkpoint-N`` folder, its run's), or None for
    a folder DynaKD did not write."""
    folder = Path(folder)
    for where in (folder, folder.parent) if folder.name.startswith(f"{PREFIX}-") else (folder,):
        if (where / CONFIG_NAME).is_file():  # a hand-edited one gets a config file's checks (duplicate keys), and
            return underscored(load_yaml(where / CONFIG_NAME))  # its dashed keys are their underscored selves
    return None


def config_differences(saved: dict[str, Any], cfg: DistillConfig) -> list[str]:
    """The settings in which a saved config (a run's ``dynakd.yaml``) differs from ``cfg``."""
    return _differences(_resolved(saved), cfg.to_dict())


def recorded_settings(folder: str | Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """Those of ``keys`` that the run saved in ``folder`` recorded (nothing for a folder DynaKD did not write)."""
    saved = recorded_config(folder) or {}
    return {k: saved[k] for k in keys if saved.get(k) is not None}


def _says(value: Any) -> bool:
    """Whether a recorded setting says something a run can lend: not unset, off or an empty list."""
    return value is not None and value is not False and value != []


def teacher_task(teacher: str | None, given: dict[str, Any]) -> dict[str, Any]:
    """What a DynaKD-trained teacher's run lends a ``distill`` command: its task when the command names none (rather
    than the default task, which a teacher of another task would be distilled on with a note), and for that task its
    data when the command names none of its own: the files or GLUE folder (those found from here), text and label
    columns, SQuAD's training articles, and the dev rows a ``--dev-split`` run held out (the student must not train
    on them either); and, whatever the data, its input length and QA windows where the command gives none (the
    student reads the inputs the teacher learned, and the teacher's score is its own). Says what it lends."""
    if not teacher:
        return {}
    given = _defaults_said(given)
    try:
        saved = recorded_config(os.path.expanduser(str(teacher))) or {}
    except OSError:  # an unreadable folder: loading the model names it
        return {}
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
    lent |= _windows(saved, given)
    lost = _take_lost(lent)
    paths, flags = _paths_and_flags(lost, saved)
    if lost and "dev_split" in lent:  # another copy (the hub's) may order rows otherwise: the cut would differ
        raise DynaKDError(f"the teacher {teacher} was fine-tuned on part of {paths} (--dev-split {lent['dev_split']}), "
                          "not found from here (a relative path counts from the folder it ran in); give "
                          f"{flags} so that the student does not train on the rows the teacher held out")
    if is_first_process():
        if said := [f"{k} {v}" for k, v in lent.items() if k != "data_seed"]:
            print(f"distill: {', '.join(said)} (as the teacher {teacher} was fine-tuned)", flush=True)
        if lost:
            print(f"note: the teacher {teacher} was fine-tuned on {paths}, not found from here (a relative path "
                  f"counts from the folder it ran in); give {flags}", flush=True)
    return lent


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


def _take_lost(lent: dict[str, Any]) -> list[str]:
    """The recorded data paths in ``lent`` not found from here (relative ones count from where the run ran), taken
    out of it, with SQuAD's training articles when their file is not lent."""
    lost = [k for k in _PATHS if k in lent and not _exists(lent[k])]
    for k in lost:
        del lent[k]
    if "train_file" not in lent:
        lent.pop("train_articles", None)
    return lost


def _paths_and_flags(keys: list[str], saved: dict[str, Any]) -> tuple[str, str]:
    """``"train_file a.csv, ..."`` and ``"--train-file, ..."``: what a run recorded, and the flags that give it."""
    return ", ".join(f"{k} {saved[k]}" for k in keys), ", ".join("--" + k.replace("_", "-") for k in keys)


# What a run folder's own dynakd.yaml gives `evaluate` unless the command says otherwise: how inputs were cut, and
# which dev rows a --dev-split run held out (it trained on the rest) ...
EVAL_SETTINGS = ("max_seq_length", "doc_stride", "max_answer_length", "n_best", "dev_split", "data_seed")
# ... and, unless the command names another task, the run's task and its data (a SQuAD run's articles with its file)
RUN_DATA = ("task", "data_dir", "train_file", "validation_file", "train_articles", "text_columns", "label_column",
            "synthetic")
_DATA_PLACES = ("data_dir", "train_file", "validation_file", "synthetic")
_PATHS = ("data_dir", "train_file", "validation_file")
_CUT = ("dev_split", "data_seed")  # which dev rows a --dev-split run held out


def _defaults_said(given: dict[str, Any]) -> dict[str, Any]:
    """``given`` with each key the command unsets (``--set task=``) at its default: the command says that value."""
    defaults = dataclasses.asdict(DistillConfig())
    return {k: defaults.get(k) if v is None else v for k, v in given.items()}


def lent_settings(command: str, given: dict[str, Any]) -> dict[str, Any]:
    """What a DynaKD run folder lends ``command`` where ``given`` (the settings it gives itself: flags, --config and
    --set, or a Python dict config) is silent: ``distill``, its teacher's run (``teacher_task``); ``evaluate``, the
    scored run's (``evaluation_defaults``); nothing to the others."""
    if command == "distill":
        return teacher_task(given.get("teacher"), given)
    if command == "evaluate" and given.get("model"):
        return evaluation_defaults(os.path.expanduser(str(given["model"])), given)
    return {}


def evaluation_defaults(folder: str | Path, given: dict[str, Any]) -> dict[str, Any]:
    """The settings the run saved in ``folder`` lends ``evaluate`` where the command (``given``: the settings it
    gives itself) is silent: ``EVAL_SETTINGS``, and the run's task and data unless the command names another task.
    A command that says where its data is takes none of the run's places (nor, for its own csv/json files, the run's
    dev split); a recorded path not found from here is not lent (relative paths count from where the run ran).
    Nothing for a folder DynaKD did not write; says what it lends besides the input settings."""
    given = _defaults_said(given)
    saved = {k: v for k, v in (recorded_config(folder) or {}).items() if _says(v)}
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
    if own_data and (task.is_user_data or given.get("synthetic")):  # the run's held-out part means nothing there
        lent = uncut
    data = {k: saved[k] for k in RUN_DATA if k in saved and k not in given
            and not (own_data and k in (*_DATA_PLACES, "train_articles"))}
    if "task" not in given:
        data["task"] = task.name
    if "dev_split" in lent:
        _check_cut(str(folder), saved, given, "the score would count rows it trained on")
    lost = _take_lost(data)
    if lost and "dev_split" in lent and "dev_split" not in given:  # another copy (the hub's) may order rows otherwise
        paths, flags = _paths_and_flags(lost, saved)
        raise DynaKDError(f"{folder} was trained on part of {paths} "
                          f"(--dev-split {lent['dev_split']}), not found from here (a relative path counts from the "
                          f"folder the run ran in); give {flags} so the part it held out is cut from the same rows")
    said = [f"{k} {v}" for k, v in {**data, **lent}.items()
            if k in ("task", "dev_split", "train_articles", "doc_stride", *_DATA_PLACES) and k not in given]
    if is_first_process():
        if said:
            print(f"evaluate: {', '.join(said)} (as {folder} was trained)", flush=True)
        if saved.get("max_eval_samples") and "max_eval_samples" not in given:
            n = saved["max_eval_samples"]
            print(f"note: {folder} was scored on a seeded subset of {n} evaluation rows (--max-eval-samples {n}); "
                  f"this scores them all (give --max-eval-samples {n} for the same rows)", flush=True)
        # (training rows are read only where the run cut its evaluation rows from them: SQuAD's articles)
        if needed := [k for k in lost if k != "train_file" or "train_articles" in saved]:
            paths, flags = _paths_and_flags(needed, saved)
            print(f"note: {folder} was trained on {paths}, not found from here (a relative path counts from the "
                  f"folder the run ran in); give {flags}", flush=True)
    return {**lent, **data}


def _same_place(key: str, given: Any, saved: Any) -> bool:
    """Whether the command's data setting names the run's: equal, the same file or folder spelt otherwise, or a path
    that stands in for a recorded one not found from here (the note of ``evaluation_defaults`` asks for it)."""
    if given == saved:
        return True
    if key not in _PATHS or saved is None:
        return False
    if not _exists(saved):
        return True
    return same_file(str(given), str(saved))


def _exists(path: Any) -> bool:
    """Whether ``path`` (``~`` expanded) names something here; False for a name the OS refuses (too long, ...)."""
    return os.path.exists(os.path.expanduser(str(path)))


def note_other_task(folder: str | Path, task: str, role: str) -> None:
    """Say so when the model in ``folder`` was trained by DynaKD on another task than ``task`` (allowed: a related
    task may be the point, but a teacher of another task is more often a slip)."""
    trained = recorded_settings(folder, ("task",)).get("task")
    if trained and trained != task and is_first_process():
        print(f"note: the {role} {folder} was trained on task {trained}, this run is on {task}", flush=True)


def finetune_differences(folder: Path, cfg: DistillConfig) -> list[str]:
    """The settings in which the fine-tuned model saved in ``folder`` differs from ``cfg``'s (empty when it matches,
    or when the folder holds no DynaKD run)."""
    saved = recorded_config(folder)
    return [] if saved is None else finetune_config_differences(saved, cfg)


def finetune_config_differences(saved: dict[str, Any], cfg: DistillConfig) -> list[str]:
    """``finetune_differences`` against a saved config."""
    diff = [k for k in config_differences(saved, cfg) if k not in _NOT_READ_BY_FINETUNE]
    model = (Path(packaged.resolve(str(x))).parts[-2:] for x in (saved.get("model"), cfg.model or ""))
    return diff + (["model"] if next(model) != next(model) else [])


# What a run writes at the top of its folder, by name or pattern (a model's and a tokenizer's files of any
# architecture): what --overwrite deletes, and what a folder without a run may not hold (the run would write over it).
RUN_ENTRIES = (CONFIG_NAME, "metrics.json", "README.md", "training_args.bin", "config.json", "generation_config.json",
               "special_tokens_map.json", "added_tokens.json", "merges.txt", "chat_template.jinja", "*.safetensors",
               "*.safetensors.index.json", "pytorch_model*.bin", "tokenizer*", "vocab.*", "*.model", "alignment.json",
               "alignment.png", f"{PREFIX}-*", "runs")


def _tokenizer_files(out: Path) -> tuple[str, ...]:
    """The file names the saved tokenizer's class writes beside ``RUN_ENTRIES``' usual ones (PhoBERT's ``bpe.codes``,
    LUKE's ``entity_vocab.json``), read from its ``tokenizer_config.json``; none if that names no class we know."""
    name = jsonfile.field(out / "tokenizer_config.json", "tokenizer_class")
    import transformers

    for cls in (name, f"{name}Fast") if isinstance(name, str) else ():
        files = getattr(getattr(transformers, cls, None), "vocab_files_names", None)
        if isinstance(files, dict):
            return tuple(v for v in files.values() if isinstance(v, str))
    return ()


def published_files(out: Path) -> list[str]:
    """What publishing the run in ``out`` uploads, as the hub client's patterns (in which ``*`` crosses ``/``): the
    run's own files at the top by their exact names, and its TensorBoard event files; not a file of the user's beside
    them or in a folder (notes, a ``tokenizers/`` of their own), nor a checkpoint."""
    files = [glob.escape(e.name) for e in _run_entries(out) if e.is_file()]
    return [*files, "runs/*/events.out.tfevents*"] if (out / "runs").is_dir() else files


def _run_entries(out: Path) -> list[Path]:
    """The entries of ``out`` a run writes: files by ``RUN_ENTRIES`` or of the saved tokenizer's class, and of folders
    only checkpoints and a ``runs/`` of TensorBoard files alone (a user's ``tokenizers/`` or ``checkpoint-best/`` is
    not a run's)."""
    patterns = RUN_ENTRIES + _tokenizer_files(out)

    def written(entry: Path) -> bool:
        if entry.is_dir():
            return is_checkpoint_name(entry.name) or (entry.name == "runs" and _tensorboard_only(entry))
        return entry.name != "runs" and any(fnmatch.fnmatchcase(entry.name, p) for p in patterns)

    return sorted(e for e in out.iterdir() if written(e))


def _remove_event_files(out: Path) -> None:
    """A replaced run's TensorBoard files in a ``runs/`` that holds other files too (kept, with them)."""
    if (out / "runs").is_dir():
        for event in (out / "runs").rglob("events.out.tfevents*"):
            event.unlink()


def check_output(cfg: DistillConfig, command: str) -> Path:
    """Refuse an output folder that is a model the run reads, that holds other runs, that holds files a run writes
    but no run, or a different run or this run finished (the last two unless ``overwrite``); writes nothing. Files of
    other origin (a log, notes) may sit beside a run: ``--overwrite`` replaces what runs write, nothing else."""
    if not cfg.output:
        raise DynaKDError(f"{command} needs --output DIR")
    out = Path(cfg.output)
    if out.exists() and not out.is_dir():
        raise DynaKDError(f"--output {out} is a file, not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return out
    for role in ("teacher", "student", "model"):  # (model: the checkpoint a fine-tune starts from)
        name = getattr(cfg, role)
        if isinstance(name, str) and same_file(name, str(out)):
            raise DynaKDError(f"--output {out} is the {role}'s folder: the run would write over the model it reads; "
                              "choose another --output")
    # (two levels down: a project's runs/ folder of runs, or one more; a deeper walk could take long in a big tree)
    if nested := sorted(p.parent for pattern in (f"*/{CONFIG_NAME}", f"*/*/{CONFIG_NAME}") for p in out.glob(pattern)):
        raise DynaKDError(f"{out} holds other runs ({', '.join(map(str, nested[:3]))}); a run's folder holds one run: "
                          "choose another --output")
    if not (out / CONFIG_NAME).is_file():
        if taken := _run_entries(out):  # a model folder DynaKD did not write, or a run's files without their record
            raise DynaKDError(f"{out} holds {', '.join(e.name for e in taken[:4])} but no DynaKD run, which a run "
                              "would write over; choose another --output")
        return out
    if cfg.overwrite:
        return out
    if diff := config_differences(recorded_config(out), cfg):
        checkpoint = latest_checkpoint(out)
        kept = (f"; it holds {checkpoint.name}, which the command it was started with resumes, and which --overwrite "
                "deletes" if checkpoint is not None else "")
        raise DynaKDError(
            f"{out} already holds a different run (differs in: {', '.join(diff[:5])}){kept}; "
            "pass --overwrite to replace it or choose another --output"
        )
    if (out / "metrics.json").is_file():  # finished: the same command again would delete the model it saved
        raise DynaKDError(f"{out} already holds this run, finished (metrics.json); pass --overwrite to train it again "
                          "or choose another --output")
    return out


def resume_point(cfg: DistillConfig, out: Path) -> Path | None:
    """The checkpoint this run continues from: the newest finished checkpoint of the same run in ``out`` (resume is
    the default; ``--resume`` insists on one, ``--overwrite`` starts again). Checked whole before any model loads."""
    if cfg.overwrite:
        return None
    checkpoint = latest_checkpoint(out)
    if checkpoint is None:
        if cfg.resume:
            raise DynaKDError(f"--resume: {out} holds no finished checkpoint to resume from")
        return None
    check_checkpoint(checkpoint)
    _note_teacher_cache(cfg, out, checkpoint)
    return checkpoint


def _note_teacher_cache(cfg: DistillConfig, out: Path, checkpoint: Path) -> None:
    """Say so when a resume switches the teacher cache on or off where the run can read one: the steps before the
    checkpoint read the teacher another way (cached features or live), so the weights will not be an uninterrupted
    run's. (``auto`` reads no cache in a run shorter than an epoch, which is not known before the data loads.)"""
    before = (recorded_config(out) or {}).get("teacher_cache", DistillConfig.teacher_cache)
    before = "off" if before is False else before  # (YAML reads a bare `off` as false)
    if not cfg.teacher or (before == "off") == (cfg.teacher_cache == "off") or cache_blocker(cfg) is not None \
            or not is_first_process():
        return
    cached = f"its features cached in {cfg.teacher_cache_dtype}"
    how = f"{cached}, not live" if cfg.teacher_cache == "off" else f"live, not {cached}"
    print(f"note: resuming from {checkpoint.name} with teacher_cache {cfg.teacher_cache}; the run's last start "
          f"ran with {before} and read the teacher another way ({how}), so the weights will differ slightly from "
          "an uninterrupted run's", flush=True)


@contextlib.contextmanager
def run_lock(out: Path):
    """Process 0's hold on the run folder for the ``with`` block, from before ``prepare_output`` until the run (its
    push too) ends: a second start in the folder (a requeued job, another terminal) resumed from a checkpoint the
    first then rotated away, and failed with a confusing error. It is refused at once instead. A folder made here
    goes again if the run leaves it empty (it failed before writing anything)."""
    if not is_first_process():  # (the processes of one launched run share the folder)
        yield
        return
    where = existing_part(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DynaKDError(f"cannot write to {out}: {e.strerror or e}") from None

    def refuse(holder: str) -> str:
        return (f"{out} is in use: {holder} is training there (two starts in one folder would resume from "
                "checkpoints the other deletes); wait for it to end, or stop it")

    try:
        with locks.exclusive(out / RUN_LOCK, refuse, "nothing stops a second start from training in this folder"):
            yield
    finally:
        _remove_made(out, where)


def _remove_made(out: Path, where: Path) -> None:
    """Remove ``out`` and the folders made with it below ``where``, those left empty."""
    for folder in (out, *out.parents):
        if folder == where:
            return
        try:
            folder.rmdir()
        except OSError:  # not empty: the run's
            return


def check_writable(out: Path) -> None:
    """Fail before loading models when the output folder cannot be created or written. Creates nothing: a run that
    fails before it starts (data, models) leaves no empty folder behind, and processes starting together do not race
    over a folder one of them made."""
    where = existing_part(out)  # where creating starts
    if not where.is_dir():
        raise DynaKDError(f"cannot write to {out}: {where} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as e:
        raise DynaKDError(f"cannot write to {out}: {e.strerror or e}") from None


def prepare_output(cfg: DistillConfig, command: str, resume: Path | None = None) -> Path:
    """Create the output folder (replacing an earlier DynaKD run there unless resuming it) and write the resolved
    config."""
    out = check_output(cfg, command)
    try:
        if resume is None and (out / CONFIG_NAME).is_file():
            # replaced: what runs write goes; this run, stopped before its first checkpoint: what it wrote by then
            # goes (checkpoints, TensorBoard files) but its record, replaced below (whole: a full disk keeps it);
            # files of other origin stay either way
            for entry in _run_entries(out):
                if cfg.overwrite or entry.name == "runs" or is_checkpoint_name(entry.name):
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            if cfg.overwrite:
                _remove_event_files(out)
        out.mkdir(parents=True, exist_ok=True)
        remove_partial(out)
        # pushing, overwriting and resuming are what this run does once, not settings: a run started again from its
        # dynakd.yaml neither pushes nor replaces a finished run (nor insists on a checkpoint) unless told again
        save_config(dataclasses.replace(cfg, push_to_hub=None, hub_private=False, overwrite=False, resume=False),
                    out / CONFIG_NAME)
    except OSError as e:
        raise DynaKDError(f"cannot write to {out}: {e.strerror or e}") from None
    return out


def _tensorboard_only(folder: Path) -> bool:
    """Whether ``folder`` holds TensorBoard event files alone (a run's ``runs/``, not a project's folder of runs)."""
    return all(p.is_dir() or p.name.startswith("events.out.tfevents") for p in folder.rglob("*"))


def discard_output(out: Path) -> None:
    """Take back what ``prepare_output`` wrote for a run that stopped before training: its config and the folder,
    when nothing else is in it (the run's lock aside: ``run_lock`` removes a folder it made once it lets go). A folder
    holding other files (a run's earlier attempt, files of other origin) keeps the config, so that the same command
    again recognises its run rather than a folder of strangers."""
    if out.is_dir() and all(p.name in (CONFIG_NAME, RUN_LOCK) for p in out.iterdir()):
        (out / CONFIG_NAME).unlink(missing_ok=True)
        if not any(out.iterdir()):
            out.rmdir()


def describe_model(model, folder: Path) -> dict[str, Any]:
    """Parameter count, depth, width and on-disk size of a model: of its weight files alone, as transformers names
    them (``model.safetensors``, shards ``model-00001-of-00002.safetensors``; else ``pytorch_model*.bin``), not a
    run's ``training_args.bin``."""
    files = list(folder.glob("model*.safetensors")) or list(folder.glob("pytorch_model*.bin"))
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "layers": model.config.num_hidden_layers,
        "hidden_size": model.config.hidden_size,
        "size_mb": round(sum(f.stat().st_size for f in files) / 2**20, 1) if files else None,
    }


def earlier_metrics(out: Path) -> dict[str, Any]:
    """The record in ``out/metrics.json`` that a score is added to (checked before scoring too, by ``evaluate``)."""
    path = out / "metrics.json"
    try:
        earlier = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        earlier = None
    if not isinstance(earlier, dict):
        raise DynaKDError(f"{path} is not a metrics record DynaKD can add to (unreadable, or not a JSON object); move "
                          "it away, or give --output DIR")
    return earlier


def metrics_record(command: str, cfg: DistillConfig, task: TaskSpec, metrics: dict[str, Any]) -> dict[str, Any]:
    """What ``metrics.json`` records of a run or a score: ``metrics`` (``eval``, ``model``: the model described, ...)
    and how they came about. ``evaluate`` names the model it scored under ``model_name_or_path`` (a folder, or a hub
    id or alias; a record written before 2026-12-05 has it under ``model``, in place of the description)."""
    record = {"command": command, "task": task.name, "seed": cfg.seed, **metrics}
    if command == "distill":  # no aligner for methods without a layer term
        record.update(method=cfg.method, align=cfg.align.name if cfg.terms["feature"] else None)
    if command == "evaluate":  # which model, and how the inputs were cut (a run folder's own settings unless said)
        record.update(model_name_or_path=cfg.model, max_seq_length=cfg.max_seq_length)
        if task.is_qa:  # the windows, and how answers are read from them
            record.update(doc_stride=cfg.stride(), n_best=cfg.n_best, max_answer_length=cfg.max_answer_length)
        if cfg.dev_split is not None:  # scored on the part of dev the run held out (data_seed chose it)
            record.update(dev_split=cfg.dev_split, data_seed=cfg.data_seed)
        if cfg.max_eval_samples is not None:  # a seeded subset, not the whole split
            record.update(max_eval_samples=cfg.max_eval_samples, data_seed=cfg.data_seed)
        if cfg.bf16 or cfg.fp16:  # under autocast (a run's own scores are in its precision, dynakd.yaml says which)
            record["mixed_precision"] = "bf16" if cfg.bf16 else "fp16"
    return record


def write_metrics(
    out: Path, command: str, cfg: DistillConfig, task: TaskSpec, metrics: dict[str, Any], merge: str | None = None
) -> Path:
    """Write ``metrics.json`` atomically (``metrics_record``); with ``merge``, add the record under that key of an
    existing file."""
    record = metrics_record(command, cfg, task, metrics)
    path = out / "metrics.json"
    if merge and path.is_file():
        record = {**earlier_metrics(out), merge: record}
    atomic.write_text(path, jsonfile.dumps(record, indent=2))
    return path
