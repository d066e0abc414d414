"""The run folder: refuse to mix runs, record the resolved config and the metrics."""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import glob
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import atomic, jsonfile, locks, packaged
from .cache import cache_blocker
from .checkpoints import (
    CONFIG_NAME,
    PREFIX,
    check_checkpoint,
    is_checkpoint_name,
    latest_checkpoint,
    read_teacher_cache,
    remove_partial,
)
from .config import (
    ALIGNER_READS,
    DATA_PATHS,
    DistillConfig,
    build_config,
    existing_part,
    load_yaml,
    save_config,
    underscored,
    unread_options,
)
from .data.tasks import TaskSpec, get_task
from .distributed import is_first_process, note
from .errors import DynaKDError
from .provenance import versions

RUN_LOCK = ".dynakd.lock"  # hidden: not published (hub.PUSH_IGNORE), nor a file of the run's or the user's
# Keys that do not change what a run trains (a compiled run gives the eager run's losses to 1e-4; evaluating more often
# changes no weight: e2e/test_resume.py), or that a resume may need to change: a cache's float16 features move the
# weights in the 4th digit, but a full disk may be why the teacher cache is off now (a resume that switches it says so);
# padding moves the last bits of the states, as compiling does (and a run from before it was a setting padded to 8).
_COSMETIC = {"output", "overwrite", "progress", "logging_steps", "report_to", "teacher_cache", "eval_teacher",
             "eval_batch_size", "eval_steps", "resume", "save_steps", "keep_checkpoints", "torch_compile",
             "torch_compile_mode", "cuda_graphs", "dataloader_num_workers", "push_to_hub", "hub_private",
             "pad_to_multiple_of", "ddp_find_unused_parameters", "trust_remote_code"}
# Such keys inside a group: token-level windows give the same loss and gradients (unit/test_windowed.py), and their
# default changed from 0 to unset (by the device) after runs were saved with it.
_COSMETIC_IN = {"dynamics": {"window_mib"}}


# The settings that name a model (``model``: the checkpoint a fine-tune starts from), and with them those that name a
# file or folder: compared as files (``same_setting``), and counted from the folder a run ran in where a command in
# another folder resumes it (``check_output``)
MODEL_SETTINGS = ("teacher", "student", "model")
PATH_SETTINGS = (*MODEL_SETTINGS, *DATA_PATHS)


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    old, new = _without_cosmetic(old, new)
    keys = (set(old) | set(new)) - _COSMETIC - (not_read(old) & not_read(new))
    if isinstance(steps := old.get("max_steps"), int) and steps > 0 and steps == new.get("max_steps"):
        keys.discard("epochs")  # (the steps decide how long a run trains: transformers' max_steps)
    return sorted(k for k in keys if not same_setting(k, old.get(k), new.get(k)))


def run_differences(configs: list[dict[str, Any]]) -> list[str]:
    """The settings in which resolved run configs (``resolved_config``) differ, a group's by their dotted names
    (``align.eps``), the method first: those ``_differences`` counts between the first and each other (a setting that
    neither of two runs' methods reads is no difference)."""
    keys: list[str] = []
    for other in configs[1:]:
        for key in _differences(configs[0], other):
            old, new = configs[0].get(key), other.get(key)
            parts = ([f"{key}.{k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
                     if isinstance(old, dict) and isinstance(new, dict) else [key])
            keys += [k for k in parts if k not in keys]
    return sorted(keys, key=lambda k: k != "method")


def said_differences(saved: dict[str, Any], cfg: DistillConfig, keys: list[str] | None = None,
                     prefix: str = "") -> str:
    """The settings in which a saved config differs from ``cfg`` (``keys``: those of them to say; by default all),
    each as ``key old -> new`` (a group's by their dotted names: ``dynamics.reference batch -> ema``; ``prefix``
    before each, ``teacher.``), at most five. Where the method differs, the settings either method does not read are
    left to it: ``--method kd`` on a ``full`` run differed in align and beta too, at each method's defaults."""
    old, new = _without_cosmetic(resolved_config(saved), cfg.to_dict())
    keys = _differences(old, new) if keys is None else keys
    if "method" in keys:
        keys = [k for k in keys if k not in not_read(old) | not_read(new)]
    said = [prefix + said for k in keys for said in _said(k, old.get(k), new.get(k))]
    return ", ".join(said[:5]) + (f", and {len(said) - 5} more" if len(said) > 5 else "")


def _said(key: str, old: Any, new: Any) -> list[str]:
    """``key old -> new``; for a group, one such for each of its settings that differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [said for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
                for said in _said(f"{key}.{k}", old.get(k), new.get(k))]
    return [f"{key} {_shown(old, key)} -> {_shown(new, key)}"]


def is_unset(key: str, value: Any) -> bool:
    """Whether a resolved setting's value means unset: None, or ``max_steps`` -1 (the epochs' steps)."""
    return value is None or (key == "max_steps" and value == -1)


def _shown(value: Any, key: str = "") -> str:
    text = "unset" if is_unset(key, value) else str(value).lower() if isinstance(value, bool) else str(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _without_cosmetic(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two configs to compare, without the keys of ``_COSMETIC_IN`` in their groups, nor the align settings that
    either's aligner does not read (``ALIGNER_READS``: an OT run given ``align.tau`` is told it is unread and trains
    as it would without; of an attention run and an OT run, the aligner's name differs, not the settings only one of
    them reads); copies where they have them."""
    reads = [ALIGNER_READS.get((c.get("align") or {}).get("name")) if isinstance(c.get("align"), dict) else None
             for c in (old, new)]
    both = None if None in reads else {"name"} | (reads[0] & reads[1])
    return tuple(_cut(c, both) for c in (old, new))


def _cut(cfg: dict[str, Any], align_keys: set[str] | None) -> dict[str, Any]:
    cut = {group: {k: v for k, v in cfg[group].items() if k not in keys}
           for group, keys in _COSMETIC_IN.items() if isinstance(cfg.get(group), dict)}
    if align_keys is not None:
        cut["align"] = {k: v for k, v in cfg["align"].items() if k in align_keys}
    return cfg | cut


def not_read(cfg: dict[str, Any]) -> set[str]:
    """The settings a run's method never reads (``unread_options``): two runs that differ only in these train alike."""
    return unread_options(cfg.get("method"))


def same_setting(key: str, old: Any, new: Any) -> bool:
    """Equal, or the same model, file or folder spelt otherwise (``runs/t``, ``runs/t/``, ``./runs/t``, its absolute
    path): a resumed run is the run it was, however a script spells its paths."""
    old, new = _model(key, old), _model(key, new)
    if old == new:
        return True
    return key in PATH_SETTINGS and isinstance(old, str) and isinstance(new, str) and same_file(old, new)


def same_file(a: str, b: str) -> bool:
    """Whether two paths (``~`` expanded) name one existing file or folder, however each is spelt."""
    try:
        return path_exists(a) and path_exists(b) and os.path.samefile(os.path.expanduser(a), os.path.expanduser(b))
    except (OSError, ValueError):
        return False


def path_exists(path: Any) -> bool:
    """Whether ``path`` (``~`` expanded) names something here; False for a name the OS refuses (too long, ...)."""
    return os.path.exists(os.path.expanduser(str(path)))


def _model(key: str, value: Any) -> Any:
    """A checkpoint as loaded: a packaged checkpoint's alias and its folder are one model (a run folder written
    before the alias stayed in configs holds the folder)."""
    return packaged.resolve(value) if key in MODEL_SETTINGS and isinstance(value, str) else value


# Extractive QA's own settings, which a classification task never reads (train_articles is refused: data.load)
QA_SETTINGS = ("doc_stride", "n_best", "max_answer_length")


def note_not_read_by_task(cfg: DistillConfig, given: dict[str, Any]) -> None:
    """Say which extractive QA settings a command gave a task that is not QA (at other values than the defaults: a
    run's saved dynakd.yaml spells them out)."""
    try:
        qa = get_task(cfg.task).is_qa
    except DynaKDError:
        return
    gave_qa_tokens = isinstance(given.get("dynamics"), dict) and "qa_tokens" in given["dynamics"]
    if qa:
        if gave_qa_tokens and cfg.dynamics.qa_tokens == "context" and cfg.dynamics.pooling == "cls" \
                and cfg.terms["feature"] == "dynamics":
            note("dynamics.pooling 'cls' compares each window's class token alone, so dynamics.qa_tokens 'context' "
                 "is not read: the run trains as it would without")
        return
    defaults = dataclasses.asdict(DistillConfig())
    unread = [k for k in QA_SETTINGS if k in given and getattr(cfg, k) != defaults[k]]
    if gave_qa_tokens and cfg.dynamics.qa_tokens != defaults["dynamics"]["qa_tokens"]:
        unread.append("dynamics.qa_tokens")
    if unread:
        note(f"task {cfg.task} does not read {', '.join(unread)} (extractive QA's settings): the run trains as it "
             "would without")


def note_not_read(cfg: DistillConfig, given: dict[str, Any]) -> None:
    """Say which of the settings a command gave its method does not read (a sweep's base may give them all its
    methods: they are not refused)."""
    settings, defaults = cfg.to_dict(), build_config({"method": cfg.method}).to_dict()
    note_not_read_by_task(cfg, given)
    # (a run's saved dynakd.yaml given as --config spells out every key, at the defaults: those say nothing)
    if unread := sorted(k for k in not_read(settings) & set(given) if settings[k] != defaults[k]):
        note(f"method {cfg.method} does not read {', '.join(unread)}: the run trains as it would without")
    if "align" in not_read(settings) or not isinstance(given.get("align"), dict):
        return
    read = ALIGNER_READS.get(cfg.align.name, set()) | {"name"}
    if other := sorted(f"align.{k}" for k in set(given["align"]) - read
                       if settings["align"].get(k) != defaults["align"].get(k)):
        note(f"the {cfg.align.name} aligner does not read {', '.join(other)}: the run trains as it would without")


def without_unread_data(saved: dict[str, Any]) -> dict[str, Any]:
    """A run's recorded settings without the data places it never read (both refused since: ``config.checks``): a
    run of the synthetic corpus could record a ``data_dir`` or files beside it, and one of SQuAD or of one's own
    files a ``data_dir``. Lent on, they would be refused; compared with today's config, its resume or a sweep's
    finished cells would differ in them."""
    if saved.get("synthetic"):
        return {k: v for k, v in saved.items() if k not in ("data_dir", "train_file", "validation_file")}
    try:
        task = get_task(str(saved.get("task", DistillConfig.task)))
    except DynaKDError:
        return saved
    return saved if task.reads_data_dir else {k: v for k, v in saved.items() if k != "data_dir"}


def resolved_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config with its defaults resolved as today's code resolves them (a folder written before the feature
    weight was spelt out, ``beta: null``, compares by the weight it used); as saved if it no longer parses. Resolved
    once, it compares with many configs (``resolved_differences``)."""
    try:
        return build_config({k: v for k, v in without_unread_data(saved).items() if k not in _COSMETIC}).to_dict()
    except DynaKDError:
        return saved


# Options a ``task`` fine-tune never reads (the distillation terms; it does read task_weight and balance, which
# scale its one term), and the starting checkpoint, which is compared by name: an alias resolves to a different path
# in every environment.
_NOT_READ_BY_FINETUNE = {"model", "teacher", "student", "student_layers", "student_layer_ids", "method", "temperature",
                         "alpha", "beta", "staged", "hidden_weight", "dynamics", "align"}


def with_its_run(folder: str | Path) -> tuple[Path, ...]:
    """``folder`` and, for a ``checkpoint-N`` folder, its run's folder after it: where a checkpoint's records are read
    (its run's settings and scores)."""
    folder = Path(folder)
    return (folder, folder.parent) if folder.name.startswith(f"{PREFIX}-") else (folder,)


def recorded_config(folder: str | Path) -> dict[str, Any] | None:
    """The config a run saved in ``folder`` (``dynakd.yaml``; for a ``checkpoint-N`` folder, its run's), or None for
    a folder DynaKD did not write, or a checkpoint no longer there (its run's settings would be lent to a folder
    that is not found)."""
    folder = Path(folder)
    for where in with_its_run(folder) if folder.is_dir() else (folder,):
        if (where / CONFIG_NAME).is_file():  # a hand-edited one gets a config file's checks (duplicate keys), and
            return underscored(load_yaml(where / CONFIG_NAME))  # its dashed keys are their underscored selves
    return None


def paths_from_where_it_ran(saved: dict[str, Any], folder: str | Path,
                            keys: tuple[str, ...] = DATA_PATHS) -> dict[str, Any]:
    """``saved``, the config a run recorded in ``folder`` (``recorded_config``), with each relative path of ``keys``
    (by default the data's, ``DATA_PATHS``; ``PATH_SETTINGS`` adds the models') counted from the folder the run ran
    in, where that is known and the path is found there: a command in another folder then lends the run's data, and
    checks the files the run read, not those of the same names here (or none). A run records its own folder as
    ``output``, spelt as its command gave it, so a relative ``output`` that ``folder``'s path ends with names the
    folder it ran in: ``runs/x`` recorded in ``/a/runs/x`` ran in ``/a``. Paths stay as saved where that is not
    known: a folder moved since, an absolute ``output`` or one spelt with ``..``."""
    if (where := _elsewhere(saved, folder)) is None:
        return saved
    return saved | {k: os.path.relpath(where / v) for k, v in _relative(saved, keys) if path_exists(where / v)}


def read_from_here(saved: dict[str, Any], folder: str | Path,
                   keys: tuple[str, ...] = DATA_PATHS) -> tuple[Path | None, list[str]]:
    """The folder the run in ``folder`` ran in, where known and not this one, and those of ``keys`` whose relative
    paths ``saved`` (its recorded config, as ``paths_from_where_it_ran`` takes it) holds that are not found there
    but are from here: a later command reads the files of those names here (``paths_from_where_it_ran`` leaves such
    a path as saved), which it says."""
    if (where := _elsewhere(saved, folder)) is None:
        return None, []
    return where, [k for k, v in _relative(saved, keys) if not path_exists(where / v) and path_exists(v)]


def _elsewhere(saved: dict[str, Any], folder: str | Path) -> Path | None:
    """The folder the run in ``folder`` (which recorded ``saved``) ran in, where known and not this one."""
    where = ran_in(folder, saved.get("output"))
    return None if where is None or where == Path.cwd() else where


def _relative(saved: dict[str, Any], keys: tuple[str, ...]) -> list[tuple[str, str]]:
    """The relative paths among ``saved``'s ``keys``, as ``(key, path)``."""
    return [(k, v) for k in keys if isinstance(v := saved.get(k), str) and v
            and not os.path.isabs(os.path.expanduser(v))]


def lent_record(folder: str | Path) -> dict[str, Any]:
    """What the run in ``folder`` recorded, as it lends it to a later command: without the data places it never
    read (``without_unread_data``), its relative data paths counted from where it ran (``paths_from_where_it_ran``);
    empty for a folder DynaKD did not write."""
    return paths_from_where_it_ran(without_unread_data(recorded_config(folder) or {}), folder)


def ran_in(folder: str | Path, output: Any) -> Path | None:
    """The folder a run ran in, from its run folder's path here and the ``output`` it recorded; None where unknown."""
    if not isinstance(output, str) or not output or os.path.isabs(os.path.expanduser(output)):
        return None
    parts = Path(os.path.normpath(output)).parts
    if ".." in parts or parts == (".",):
        return None
    here = Path(os.path.abspath(os.path.expanduser(str(folder))))
    for run in with_its_run(here):  # (as recorded_config reads)
        if len(run.parts) > len(parts) and run.parts[-len(parts):] == parts:
            return Path(*run.parts[:-len(parts)])
    return None


def config_differences(saved: dict[str, Any], cfg: DistillConfig) -> list[str]:
    """The settings in which a saved config (a run's ``dynakd.yaml``) differs from ``cfg``."""
    return resolved_differences(resolved_config(saved), cfg)


def resolved_differences(resolved: dict[str, Any], cfg: DistillConfig) -> list[str]:
    """``config_differences`` of a config ``resolved_config`` resolved once."""
    return _differences(resolved, cfg.to_dict())


def recorded_settings(folder: str | Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """Those of ``keys`` that the run saved in ``folder`` recorded (nothing for a folder DynaKD did not write)."""
    saved = recorded_config(folder) or {}
    return {k: saved[k] for k in keys if saved.get(k) is not None}


def finetune_config_differences(saved: dict[str, Any], cfg: DistillConfig) -> list[str]:
    """The settings in which a fine-tune's saved config differs from ``cfg`` (empty when it matches): those a
    fine-tune reads, and its starting model by name."""
    diff = [k for k in config_differences(saved, cfg) if k not in _NOT_READ_BY_FINETUNE]
    model = (Path(packaged.resolve(str(x))).parts[-2:] for x in (saved.get("model"), cfg.model or ""))
    return diff + (["model"] if next(model) != next(model) else [])


# What a run writes at the top of its folder, by name or pattern (a model's and a tokenizer's files of any
# architecture): what --overwrite deletes, and what a folder without a run may not hold (the run would write over it).
# The demo's mark on a run it wrote (demo.py): a run's entry, so that whatever replaces the run removes it
DEMO_MARK = ".dynakd-demo"
# Names, not open patterns: `*.safetensors` or `tokenizer*` took a user's `best.safetensors` beside the run for the
# run's, and --overwrite deleted it. A tokenizer's files of other names come from its class (``_tokenizer_files``).
# Extractive QA's answers: of a run's final evaluation (run_qa.py's name), and of `dynakd evaluate` into a run's folder
PREDICTIONS, EVALUATE_PREDICTIONS = "eval_predictions.json", "evaluate_predictions.json"
RUN_ENTRIES = (CONFIG_NAME, DEMO_MARK, "metrics.json", PREDICTIONS, EVALUATE_PREDICTIONS, "README.md",
               "training_args.bin", "config.json", "generation_config.json", "special_tokens_map.json",
               "added_tokens.json", "merges.txt",
               "chat_template.jinja", "model.safetensors", "model-[0-9]*-of-[0-9]*.safetensors",
               "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model-[0-9]*-of-[0-9]*.bin",
               "pytorch_model.bin.index.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
               "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "alignment.json",
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


# What a run writes as it trains, before its first checkpoint: its TensorBoard files and, at each evaluation, its plan
_STARTED = ("runs", "alignment.json", "alignment.png")
# The run folders whose lock this process holds (``run_lock``)
_HELD: set[str] = set()


def _another_run(cfg: DistillConfig, out: Path) -> tuple[dict[str, Any], list[str]] | None:
    """The record of a different run in ``out`` (its models and data counted from where it ran: a resume from another
    folder gives the same files spelt from here; the teacher was not, and a requeued job was refused as another run,
    told to --overwrite its checkpoints) and the settings that differ (``said_differences`` says them); None where
    ``out`` holds no run's record, or this run's. The teacher cache's storage is no difference where the checkpoint
    this run resumes from records that its steps read no cache."""
    if not (out / CONFIG_NAME).is_file():
        return None
    saved = paths_from_where_it_ran(recorded_config(out), out, PATH_SETTINGS)
    keys = config_differences(saved, cfg)
    if "teacher_cache_dtype" in keys and (checkpoint := latest_checkpoint(out)) is not None \
            and read_teacher_cache(checkpoint) is False:
        keys.remove("teacher_cache_dtype")
    return (saved, keys) if keys else None


def stopped_here(cfg: DistillConfig) -> Path | None:
    """The checkpoint an unfinished run of ``cfg``'s very settings left in its output folder (a sweep's cell or
    teacher interrupted), which the run resumes from without ``overwrite``; None where the folder holds no such run,
    a finished one, another run, or a checkpoint that is not whole."""
    out = Path(cfg.output)
    if not (out / CONFIG_NAME).is_file() or (out / "metrics.json").is_file() \
            or (checkpoint := latest_checkpoint(out)) is None:
        return None
    if _another_run(dataclasses.replace(cfg, overwrite=False), out) is not None:
        return None
    try:
        check_checkpoint(checkpoint)
    except DynaKDError:
        return None
    return checkpoint


def _gives_way(out: Path) -> bool:
    """Whether the run in ``out`` stopped before its first checkpoint, holding nothing to lose but its record,
    TensorBoard files and plan (which a start of the same run replaces too), and is not training: another run may
    replace it. Not on a file system without locks, where a run training there would have its folder rewritten under
    it (``locks.held`` cannot tell)."""
    if latest_checkpoint(out) is not None or not all(e.name in (CONFIG_NAME, *_STARTED) for e in _run_entries(out)):
        return False
    return os.path.abspath(out) in _HELD or not (out / RUN_LOCK).exists() or not locks.held(out / RUN_LOCK)


def check_output(cfg: DistillConfig, command: str) -> Path:
    """Refuse an output folder that is a model the run reads, the data or teacher cache it reads, inside another run's
    folder (``_check_own_folder``), that holds other runs, that holds files a run writes but no run, or a different
    run or this run finished (the last two unless ``overwrite``); writes nothing. Files of
    other origin (a log, notes) may sit beside a run: ``--overwrite`` replaces what runs write, nothing else."""
    if not cfg.output:
        raise DynaKDError(f"{command} needs --output DIR")
    out = Path(cfg.output)
    if out.exists() and not out.is_dir():
        raise DynaKDError(f"--output {out} is a file, not a folder")
    _check_own_folder(cfg, out)
    if not out.is_dir() or not any(out.iterdir()):
        return out
    for role in MODEL_SETTINGS:
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
    if (other := _another_run(cfg, out)) is not None:
        if _gives_way(out):  # (prepare_output says so as it replaces it)
            return out
        saved, keys = other
        checkpoint = latest_checkpoint(out)
        finished = (out / "metrics.json").is_file()  # (--keep-checkpoints': they resume nothing, it is refused)
        kept = (f"; it holds {checkpoint.name}, which the command it was started with resumes, and which --overwrite "
                "deletes" if checkpoint is not None and not finished else "")
        raise DynaKDError(
            f"{out} already holds a different run (differs in: {said_differences(saved, cfg, keys)})"
            f"{_which_run(saved, cfg)}{kept}; pass --overwrite to replace it or choose another --output"
        )
    if (out / "metrics.json").is_file():  # finished: the same command again would delete the model it saved
        raise DynaKDError(f"{out} already holds this run, finished (metrics.json); pass --overwrite to train it again "
                          "or choose another --output")
    return out


def _which_run(saved: dict[str, Any], cfg: DistillConfig) -> str:
    """What the run a folder holds is, where it is another command's or another model's: ``; it is a distillation of
    <teacher> (method full)`` or ``; it is a fine-tune of <model>`` (a list of differing keys did not say so)."""
    fine_tune = saved.get("method") == "task" and not saved.get("teacher")
    model = saved.get("model") if fine_tune else saved.get("teacher")
    ours = cfg.model if fine_tune else cfg.teacher
    if fine_tune == (cfg.method == "task" and not cfg.teacher) and same_setting("model", model, ours):
        return ""
    return (f"; it is a fine-tune of {model}" if fine_tune
            else f"; it is a distillation of {model} (method {saved.get('method', 'full')})")


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
    return checkpoint


def note_teacher_cache_switch(cfg: DistillConfig, checkpoint: Path, reads: bool, before: Any) -> None:
    """Say so when a resume reads the teacher another way (``reads``: from a teacher cache) than the steps before
    its checkpoint did: the weights will then differ slightly from an uninterrupted run's. A checkpoint records how
    its steps read the teacher; one written before it did is judged by ``before``, the ``teacher_cache`` its run
    recorded before this start (None: not recorded), where that tells (``off``, or a folder: ``auto`` read no cache
    in a run shorter than an epoch)."""
    read = read_teacher_cache(checkpoint)
    if read is None:
        if before in (None, "auto"):
            return
        read = before not in ("off", False) and cache_blocker(cfg) is None  # (YAML reads a bare `off` as false)
    if read == reads:
        return
    cached = "the teacher's features from a cache"
    was, now = (cached, "the live teacher") if read else ("the live teacher", cached)
    note(f"resuming from {checkpoint.name}, whose steps read {was}; this start reads {now} (teacher_cache "
         f"{cfg.teacher_cache}), so the weights will differ slightly from an uninterrupted run's")


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
        raise DynaKDError(f"cannot write to {out}: {e.strerror or e}; {WRITABLE}") from None

    def refuse(holder: str) -> str:
        return (f"{out} is in use: {holder} is training there (two starts in one folder would resume from "
                "checkpoints the other deletes); wait for it to end, or stop it")

    held = os.path.abspath(out)
    try:
        with locks.exclusive(out / RUN_LOCK, refuse, "nothing stops a second start from training in this folder") \
                as locked:
            if locked:
                _HELD.add(held)
            yield
    finally:
        _HELD.discard(held)
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


def _check_own_folder(cfg: DistillConfig, out: Path) -> None:
    """Refuse an output folder that is another thing's: the GLUE folder the run reads (its model was written among
    the data), the teacher cache's (the run's own files made it "a non-empty folder without a cache"), or a folder
    inside a DynaKD run's, up to two above (that run then could not be trained again: its folder would hold another
    run, which ``check_output`` refuses; ``check_not_a_run`` refuses more for ``demo`` and ``ablate``, which write
    runs of their own inside their output)."""
    if isinstance(cfg.data_dir, str) and same_file(cfg.data_dir, str(out)):
        raise DynaKDError(f"--output {out} is the --data-dir folder: the run would write its model among the data; "
                          "choose another --output")
    if cfg.teacher_cache not in (None, "auto", "off") and (same_file(cfg.teacher_cache, str(out)) or _absolute(
            cfg.teacher_cache) == _absolute(str(out))):  # (neither there yet, in a first run)
        raise DynaKDError(f"--teacher-cache {cfg.teacher_cache} is the run's --output folder: give the cache a folder "
                          f"of its own (e.g. {Path(cfg.teacher_cache) / 'cache'})")
    if (out / CONFIG_NAME).is_file():  # (a run's own folder: one nested before this check still resumes)
        return
    if (folder := _first_above(out, holds_a_run)) is not None:
        raise DynaKDError(f"--output {out} is inside {folder}, a run's folder, which would then hold another run and "
                          "could not be trained again: choose another --output")


def _first_above(out: Path, test, levels: int = 2) -> Path | None:
    """The first of the ``levels`` folders above ``out`` (resolved: ``../s`` from inside a run is not inside it) that
    passes ``test``, else None."""
    return next((folder for folder in list(out.resolve().parents)[:levels] if test(folder)), None)


def holds_a_run(folder: Path) -> bool:
    """A DynaKD run's folder: its record beside what a run writes (its model, scores or a checkpoint); a dynakd.yaml
    alone (a config kept in a project's folder to reuse) is none."""
    return (folder / CONFIG_NAME).is_file() and ((folder / "metrics.json").is_file() or is_model_folder(folder)
                                                 or any(folder.glob(f"{PREFIX}-*")))


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


WRITABLE = "give --output a folder you can write to"


def check_writable(out: Path) -> None:
    """Fail before loading models when the output folder cannot be created or written. Creates nothing: a run that
    fails before it starts (data, models) leaves no empty folder behind, and processes starting together do not race
    over a folder one of them made."""
    try:  # (TensorBoard's writer and the tokenizer's files encode the path as UTF-8, strictly)
        os.path.abspath(out).encode("utf-8")
    except UnicodeEncodeError:  # bytes this locale cannot decode (an ASCII one with UTF-8 mode off) in the path
        raise DynaKDError(f"cannot write to {out}: this process reads paths as {sys.getfilesystemencoding()}, which "
                          "cannot spell its letters; run under a UTF-8 locale, or with PYTHONUTF8=1") from None
    where = existing_part(out)  # where creating starts
    if where.is_symlink() and not where.exists():
        raise DynaKDError(f"cannot write to {out}: {where} is a link to {os.readlink(where)}, which is not there")
    if not where.is_dir():
        raise DynaKDError(f"cannot write to {out}: {where} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as e:
        raise DynaKDError(f"cannot write to {out}: {e.strerror or e}; {WRITABLE}") from None


def check_not_a_run(out: Path, command: str, writes: str) -> None:
    """Refuse the ``--output`` of a command that writes runs into folders inside it (``demo``, ``ablate``) where it,
    or a folder up to two above it, is a run's own folder or a model's: the runs would nest in it, and the run there
    could not be trained again (its folder would hold other runs, ``check_output`` looking two levels down)."""

    def taken(folder: Path) -> bool:
        return recorded_config(folder) is not None or is_model_folder(folder)

    if (folder := out if taken(out) else _first_above(out, taken)) is not None:
        what = f"{out} is" if folder == out else f"{out} is inside {folder},"
        raise DynaKDError(f"{what} a run's folder (or a model's), and {command} writes {writes} into folders inside "
                          "its --output: choose another --output")


def is_model_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a saved transformers model: a ``config.json`` that names a model type or architecture
    (another tool's ``config.json`` is not one)."""
    path = folder / "config.json"
    return path.is_file() and any(jsonfile.field(path, key) for key in ("model_type", "architectures"))


def prepare_output(cfg: DistillConfig, command: str, resume: Path | None = None) -> Path:
    """Create the output folder (replacing an earlier DynaKD run there unless resuming it) and write the resolved
    config."""
    out = check_output(cfg, command)
    try:
        if resume is None and not cfg.overwrite and (other := _another_run(cfg, out)) is not None:
            saved, keys = other
            note(f"{out} holds a start of another run (differs in: {said_differences(saved, cfg, keys)}) that "
                 "stopped before its first checkpoint: this run replaces it")
        if resume is None and (out / CONFIG_NAME).is_file():
            # replaced: what runs write goes; a run stopped before its first checkpoint (this one, or another): what
            # it wrote by then goes (checkpoints, TensorBoard files, its plan) but its record, replaced below (whole:
            # a full disk keeps it); files of other origin stay either way
            for entry in _run_entries(out):
                if cfg.overwrite or entry.name in _STARTED or is_checkpoint_name(entry.name):
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            if cfg.overwrite:
                _remove_event_files(out)
        out.mkdir(parents=True, exist_ok=True)
        remove_partial(out)
        # pushing, overwriting and resuming are what this run does once, not settings: a run started again from its
        # dynakd.yaml neither pushes nor replaces a finished run (nor insists on a checkpoint) unless told again; nor
        # does it run a model's own code (--config RUN/dynakd.yaml on someone's run) unless told
        save_config(dataclasses.replace(cfg, push_to_hub=None, hub_private=False, overwrite=False, resume=False,
                                        trust_remote_code=False), out / CONFIG_NAME)
    except OSError as e:
        raise DynaKDError(f"cannot write to {out}: {e.strerror or e}; {WRITABLE}") from None
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


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` is a finished run's folder: ``metrics.json`` and ``dynakd.yaml`` side by side."""
    return path.is_dir() and (path / "metrics.json").is_file() and (path / CONFIG_NAME).is_file()


def read_metrics(folder: str | Path) -> dict[str, Any] | None:
    """The record in ``folder/metrics.json``, or None where there is none DynaKD can read: no file, an unreadable one,
    or one not a JSON object (its callers say what that means: ``earlier_metrics`` refuses an unreadable one)."""
    try:
        record = json.loads((Path(folder) / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def earlier_metrics(out: Path) -> dict[str, Any]:
    """The record in ``out/metrics.json`` that a score is added to (checked before scoring too, by ``evaluate``)."""
    path = out / "metrics.json"
    earlier = read_metrics(out) if path.is_file() else {}
    if earlier is None:
        raise DynaKDError(f"{path} is not a metrics record DynaKD can add to (unreadable, or not a JSON object); move "
                          "it away, or give --output DIR")
    return earlier


def home_relative(path: Path) -> str:
    """``path`` from ``~`` where it is under the home folder (the default cache is): the record is published with
    the run, the user's name in the path need not be."""
    for inside, home in ((Path(path).absolute(), Path.home()), (Path(path).resolve(), Path.home().resolve())):
        if inside.is_relative_to(home):  # (as written first: ~/.cache may be a link to another disk)
            return str(Path("~") / inside.relative_to(home))
    return str(path)


def _as_published(name: str | None) -> str | None:
    """A model as a published record names it: an absolute local folder from ``~`` where it is under the home folder
    (the user's name in the path need not be published), a relative one, a hub id or an alias as given."""
    return home_relative(Path(name)) if name and Path(name).is_absolute() else name


def metrics_record(command: str, cfg: DistillConfig, task: TaskSpec, metrics: dict[str, Any]) -> dict[str, Any]:
    """What ``metrics.json`` records of a run or a score: ``metrics`` (``eval``, ``model``: the model described, ...)
    and how they came about, the code's ``versions`` among it (DynaKD's commit where it runs from a checkout).
    ``evaluate`` names the model it scored under ``model_name_or_path`` (a folder, or a hub id or alias; a record
    written before 2026-12-05 has it under ``model``, in place of the description)."""
    record = {"command": command, "task": task.name, "seed": cfg.seed, **metrics, "versions": versions()}
    if task.reads_dataset:  # which dataset, and the split its scores are of (its "validation" is DynaKD's name)
        record.update(dataset=_as_published(cfg.dataset), eval_split=cfg.eval_split)
        if cfg.dataset_config:
            record["dataset_config"] = cfg.dataset_config
    if command == "distill":  # no aligner for methods without a layer term; the models it compared, as given
        record.update(method=cfg.method, align=cfg.align.name if cfg.terms["feature"] else None,
                      teacher=_as_published(cfg.teacher), student=_as_published(cfg.student))
    if command != "evaluate" and cfg.max_train_samples is not None:  # (a seeded subset of the training rows)
        record.update(max_train_samples=cfg.max_train_samples, data_seed=cfg.data_seed)
    if command != "evaluate" and cfg.transfer_samples:  # (and rows beyond it, their labels hidden)
        record.update(transfer_samples=cfg.transfer_samples)
    if cfg.max_eval_samples is not None:  # scored on a seeded subset, not the whole split
        record.update(max_eval_samples=cfg.max_eval_samples, data_seed=cfg.data_seed)
    if command == "evaluate":  # which model, and how the inputs were cut (a run folder's own settings unless said)
        record.update(model_name_or_path=cfg.model, max_seq_length=cfg.max_seq_length)
        if task.is_qa:  # the windows, and how answers are read from them
            record.update(doc_stride=cfg.stride(), n_best=cfg.n_best, max_answer_length=cfg.max_answer_length)
        if cfg.dev_split is not None:  # scored on the part of dev the run held out (data_seed chose it)
            record.update(dev_split=cfg.dev_split, data_seed=cfg.data_seed)
        if cfg.bf16 or cfg.fp16:  # under autocast (a run's own scores are in its precision, dynakd.yaml says which)
            record["mixed_precision"] = cfg.precision()
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
