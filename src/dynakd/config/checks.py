"""``validate``: every check of a whole config, in a fixed order (the first that fails is the message a user sees),
before any model or data is loaded."""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from pathlib import Path

from ..errors import DynaKDError
from ..schedules import Schedule
from .layers import _from_dict, existing_part
from .schema import COMPONENTS, DATA_PATHS, DATASET_KEYS, FORMS, DistillConfig, DynamicsConfig, auto_pooling

# The largest batch: the Trainer's evaluation allocates a copy of the loss per example of eval_batch_size, so 1e12
# asked for 4 TB and ended in a traceback; no device holds a batch near this one anyway.
MAX_BATCH = 2**20


# The most DataLoader workers: each is a process, and 1e12 hung the run while it forked them. A fixed bound rather than
# one from this machine's CPUs, so that a config (a sweep file) that validates on one machine validates on another.
MAX_WORKERS = 256

# The most Sinkhorn iterations per step: 1e12 spun on the first step without a word. Converged plans need ~50 from a
# cold start (benchmarks/speed/ot_iterations.py); each iteration is a few operators, so 10,000 already cost a step.
MAX_ITERS = 10_000


def validate(cfg: DistillConfig) -> DistillConfig:
    """Check types, choices, values and combinations before any model or data is loaded; return the config with
    every value in its declared type (a config built in Python may hold e.g. a number where a schedule belongs)."""
    cfg = _from_dict(DistillConfig, dataclasses.asdict(cfg))  # new objects: nothing the caller holds changes
    if cfg.terms["feature"] is not None:  # (a method without an aligner keeps none: its saved dynakd.yaml, reused
        cfg.align = cfg.resolved_align()  # with --method static, gives static's own fixed map, not OT)
    _expand_paths(cfg)
    _check_finite(cfg)
    _check_values(cfg)
    _one_spelling(cfg)
    _check_teacher_cache(cfg.teacher_cache)
    if cfg.torch_compile_mode is not None:
        cfg.torch_compile = True  # a compile mode asks for compilation, as in TrainingArguments
    _check_task(cfg)
    _check_dynamics_choices(cfg.dynamics)
    _check_dynamics(cfg)
    _check_cuda_graphs(cfg)
    _check_report_to(cfg.report_to)
    return cfg


def _check_report_to(names: list[str]) -> None:
    """Trackers transformers knows and this environment has: an unknown name failed in the Trainer after the models
    loaded, and a tracker not installed in its callback (a traceback). ``none`` alone: no tracker; ``all``: every
    one installed (transformers' own spellings)."""
    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
    )

    if names in (["tensorboard"], ["none"], ["all"]):  # (the default, a dependency: transformers' list not loaded)
        return
    if alone := sorted({"none", "all"} & set(names)):
        raise DynaKDError(f"report_to: {alone[0]} stands alone (report_to: {alone[0]}), not beside other trackers")
    _check_choices(names, tuple(sorted(INTEGRATION_TO_CALLBACK)), "report_to")
    available = get_available_reporting_integrations()
    if missing := [n for n in names if n not in available]:
        installed = ", ".join(available) or "none"
        raise DynaKDError(f"report_to {', '.join(missing)}: its package is not installed here (installed trackers: "
                          f"{installed})")


def _expand_paths(cfg: DistillConfig) -> None:
    """A leading ``~`` of a path expanded (a shell expands it, a YAML file or --set does not); a dataset that is a
    local folder by its absolute path: recorded as given, a relative one was looked up on the hub (or found another
    folder of its name) from anywhere but where the run ran."""
    for key in ("teacher", "student", "model", "data_dir", "train_file", "validation_file", "output", "teacher_cache",
                "dataset"):
        value = getattr(cfg, key)
        if isinstance(value, str) and value.startswith("~"):
            setattr(cfg, key, os.path.expanduser(value))
    if cfg.dataset and os.path.isdir(cfg.dataset):
        cfg.dataset = os.path.abspath(cfg.dataset)


def _check_values(cfg: DistillConfig) -> None:
    """Every single value and simple combination, in one order: the first that fails is the message."""
    checks = [*_training_checks(cfg), *_method_checks(cfg), *_run_checks(cfg), *_data_checks(cfg),
              *_schedule_checks(cfg)]
    for ok, message in checks:
        if not ok:
            raise DynaKDError(message)


def _training_checks(cfg: DistillConfig) -> list[tuple[bool, str]]:
    """The optimisation: seeds, steps, batch, rates, sequence length."""
    return [
        (all(0 <= v < 2**32 for v in (cfg.seed, cfg.data_seed)),  # numpy's seed range
         f"seed and data_seed must be in [0, 2**32), got {cfg.seed} and {cfg.data_seed}"),
        (cfg.max_steps == -1 or cfg.max_steps > 0, f"max_steps must be > 0 (or -1: train --epochs), got "
                                                   f"{cfg.max_steps}"),
        (cfg.weight_decay >= 0, f"weight_decay must be >= 0, got {cfg.weight_decay}"),
        (cfg.temperature > 0, f"temperature must be > 0, got {cfg.temperature}"),
        (0 < cfg.batch_size <= MAX_BATCH, f"batch_size must be in [1, {MAX_BATCH}], got {cfg.batch_size}"),
        (cfg.gradient_accumulation_steps >= 1,
         f"gradient_accumulation_steps must be >= 1, got {cfg.gradient_accumulation_steps}"),
        (cfg.lr > 0, f"lr must be > 0, got {cfg.lr}"),
        (cfg.max_seq_length > 1, f"max_seq_length must be > 1, got {cfg.max_seq_length}"),
        (cfg.pad_to_multiple_of is None or cfg.pad_to_multiple_of >= 1,
         f"pad_to_multiple_of must be >= 1 (1: pad to the longest row of a batch), got {cfg.pad_to_multiple_of}"),
        (cfg.epochs > 0 or cfg.max_steps > 0, "epochs or max_steps must be > 0"),
    ]


MIN_TEMPERATURE = 1e-4  # align.eps and align.tau
# said where the student's depth is known: here from student_layers or student_layer_ids, by the Distiller from a model
ONE_LAYER_RELATIVE = ("align.relative compares each teacher layer's cost across the student's layers: a student of one "
                      "layer has nothing to compare it with (its plan would be uniform); leave it out, or use "
                      "align.order_prior")


def _plan_takes_gradient(align) -> bool:
    """Whether the aligner's plan takes a gradient of its own: OT's with ``plan_grad``, a learned attention's."""
    return (align.name == "ot" and align.plan_grad) or (align.name == "attention" and align.learned)


def _method_checks(cfg: DistillConfig) -> list[tuple[bool, str]]:
    """The aligner, the dynamics, staged training, the student's depth."""
    return [
        # costs are divided by their mean first: below 1e-4 the plans are one-hot already, and far below, the solver's
        # rows stop summing to 1 (eps 1e-30 with plan_grad) or turn NaN
        (cfg.align.eps >= MIN_TEMPERATURE, f"align.eps must be >= {MIN_TEMPERATURE:g}, got {cfg.align.eps}"),
        (cfg.align.tau >= MIN_TEMPERATURE, f"align.tau must be >= {MIN_TEMPERATURE:g}, got {cfg.align.tau}"),
        (cfg.align.layers is None or cfg.terms["feature"] is None or all(ell >= 1 for ell in cfg.align.layers),
         f"align.layers lists teacher layers from 1 (the first block), got {cfg.align.layers}"),
        (cfg.align.layers is None or cfg.terms["feature"] is None or cfg.align.fixed_map == "uniform",
         f"align.layers gives the map itself: leave align.fixed_map ({cfg.align.fixed_map}) out"),
        (0 < cfg.align.iters <= MAX_ITERS, f"align.iters must be in [1, {MAX_ITERS}], got {cfg.align.iters}"),
        (0 <= cfg.align.plan_momentum < 1, f"align.plan_momentum must be in [0, 1), got {cfg.align.plan_momentum}"),
        (cfg.align.plan_every >= 1, f"align.plan_every must be >= 1 (1: a new plan each batch), "
         f"got {cfg.align.plan_every}"),
        (cfg.align.plan_every == 1 or not _plan_takes_gradient(cfg.align),
         f"align.plan_every {cfg.align.plan_every} holds a plan without gradient for the batches after the one it was "
         f"computed from; align.{'plan_grad' if cfg.align.name == 'ot' else 'learned'} takes its gradient through "
         "every batch's plan: drop one of the two"),
        (cfg.align.order_prior >= 0, f"align.order_prior must be >= 0, got {cfg.align.order_prior}"),
        (not (cfg.align.name == "attention" and cfg.align.relative and cfg.terms["feature"]
              and 1 in (cfg.student_layers, len(cfg.student_layer_ids or ()))), ONE_LAYER_RELATIVE),
        # The fixed map's own settings: given with another aligner they would be ignored without a word.
        (cfg.align.name == "fixed" or cfg.terms["feature"] is None
         or (cfg.align.fixed_map == "uniform" and cfg.align.layers is None),
         f"align.fixed_map and align.layers choose the fixed aligner's map; add --align fixed (the aligner is "
         f"'{cfg.align.name}')"),
        (all(w >= 0 for w in cfg.dynamics.weights.values()), f"dynamics.weights must be >= 0, got "
         f"{cfg.dynamics.weights}"),
        (0 <= cfg.dynamics.ema_momentum < 1, "dynamics.ema_momentum must be in [0, 1)"),
        (cfg.staged is None or 0 < cfg.staged < 1, f"staged must be a fraction in (0, 1), got {cfg.staged}"),
        (cfg.staged is None or cfg.method != "task", "staged switches the task term off in its first stage, and "
         "method 'task' has no other term: it would learn nothing until then; drop staged"),
        (cfg.student_layers is None or cfg.student_layers >= 1, "student_layers must be >= 1"),
    ]


def _run_checks(cfg: DistillConfig) -> list[tuple[bool, str]]:
    """Precision, logging, evaluation, checkpoints, data loading, the hub, clipping."""
    return [
        (not (cfg.fp16 and cfg.bf16), "choose one of fp16 and bf16"),
        (0 <= cfg.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {cfg.warmup_ratio}"),
        (cfg.logging_steps >= 1, f"logging_steps must be >= 1, got {cfg.logging_steps}"),
        (cfg.eval_steps is None or cfg.eval_steps >= 1, f"eval_steps must be >= 1, got {cfg.eval_steps}"),
        (cfg.save_steps >= 0, f"save_steps must be >= 0 (0 disables checkpoints), got {cfg.save_steps}"),
        (not (cfg.resume and cfg.overwrite), "choose one of resume and overwrite"),
        (cfg.save_steps or not cfg.keep_checkpoints, "keep_checkpoints keeps the checkpoints that save_steps writes, "
         "and save_steps 0 writes none; give save_steps N, or drop keep_checkpoints"),
        (0 < cfg.eval_batch_size <= MAX_BATCH, f"eval_batch_size must be in [1, {MAX_BATCH}], got "
                                               f"{cfg.eval_batch_size}"),
        (cfg.dataloader_num_workers >= 0, f"dataloader_num_workers must be >= 0, got {cfg.dataloader_num_workers}"),
        (cfg.dataloader_num_workers <= MAX_WORKERS, f"dataloader_num_workers must be at most {MAX_WORKERS}, got "
                                                    f"{cfg.dataloader_num_workers}"),
        (cfg.push_to_hub or not cfg.hub_private, "hub_private creates the --push-to-hub repository private; it needs "
         "--push-to-hub REPO"),
        (cfg.max_grad_norm >= 0, f"max_grad_norm must be >= 0, got {cfg.max_grad_norm}"),
    ]


def _data_checks(cfg: DistillConfig) -> list[tuple[bool, str]]:
    """Subsets, extractive QA, the dev split and the transfer set (and the sensitivity noise, in its place in the
    order)."""
    return [
        (cfg.max_train_samples is None or cfg.max_train_samples > 0, "max_train_samples must be > 0"),
        (cfg.max_eval_samples is None or cfg.max_eval_samples > 0, "max_eval_samples must be > 0"),
        (cfg.dynamics.sensitivity_noise > 0, "dynamics.sensitivity_noise must be > 0"),
        (cfg.dynamics.window_mib is None or cfg.dynamics.window_mib >= 0,  # (not finite: refused with every number)
         f"dynamics.window_mib must be a number >= 0 (0: all windows at once), got {cfg.dynamics.window_mib}"),
        (cfg.doc_stride is None or cfg.doc_stride >= 1, f"doc_stride must be >= 1, got {cfg.doc_stride}"),
        (cfg.max_answer_length >= 1, f"max_answer_length must be >= 1, got {cfg.max_answer_length}"),
        (cfg.n_best >= 1, f"n_best must be >= 1, got {cfg.n_best}"),
        (cfg.train_articles is None or cfg.train_articles >= 1, "train_articles must be >= 1"),
        (cfg.dev_split is None or 0 < cfg.dev_split < 1, f"dev_split must be in (0, 1), got {cfg.dev_split}"),
        (cfg.transfer_samples is None or cfg.transfer_samples >= 0, "transfer_samples must be >= 0"),
    ]


def _schedule_checks(cfg: DistillConfig) -> list[tuple[bool, str]]:
    """Each weight schedule's values and fractions of training."""
    checks = []
    for name in ("task_weight", "alpha", "beta", "hidden_weight"):
        sched = getattr(cfg, name)
        if sched is not None and (sched.start < 0 or sched.end < 0):
            checks.append((False, f"{name} must be >= 0, got start={sched.start} end={sched.end}"))
        if sched is not None and not (0 <= sched.warmup < 1 and 0 <= sched.switch <= 1):
            checks.append((False, f"{name}: warmup must be in [0, 1) and switch in [0, 1] (fractions of training), "
                                  f"got warmup={sched.warmup} switch={sched.switch}"))
        elif sched is not None and sched.kind == "step" and sched.switch < sched.warmup:
            # the ramp would climb towards start past the switch, then drop to end: neither schedule asked for
            checks.append((False, f"{name}: a step schedule's switch ({sched.switch}) comes before its warmup ends "
                                  f"({sched.warmup}); switch at or after the warmup"))
    return checks


def _one_spelling(cfg: DistillConfig) -> None:
    """Each schedule's fields that its kind does not read at one value: a constant's end at its start, the switch of
    any kind but a step at the default's, so that run folders that spelt them otherwise compare as the same run."""
    for name in ("task_weight", "alpha", "beta", "hidden_weight"):
        sched = getattr(cfg, name)
        if sched is not None and sched.kind == "constant":
            sched.end = sched.start
        if sched is not None and sched.kind != "step":
            sched.switch = Schedule.switch


def _check_task(cfg: DistillConfig) -> None:
    """The task known, named one way, and the settings that depend on it."""
    from ..data.tasks import get_task

    task = get_task(cfg.task)  # unknown task names fail here, before any model is loaded
    cfg.task = task.name  # "SST-2" and "sst2" name one run
    _check_data_flags(cfg, task)
    if cfg.dynamics.pooling == "auto":
        cfg.dynamics.pooling = auto_pooling(task.name)
    if cfg.dev_split is not None:
        _check_dev_split(task, cfg.data_dir)
    if cfg.transfer_samples:
        _check_transfer(cfg, task)
    if task.is_qa and cfg.doc_stride is not None and cfg.doc_stride >= cfg.max_seq_length:
        raise DynaKDError(f"doc_stride ({cfg.doc_stride}) must be smaller than max_seq_length ({cfg.max_seq_length})")


def _check_dev_split(task, data_dir: str | None = None) -> None:
    """``dev_split`` cuts a GLUE task's one eval split (or a csv/json task's one file) by example; SQuAD is split by
    article instead."""
    if task.is_qa:
        raise DynaKDError("dev_split cuts a task's evaluation set by example (GLUE, csv, json); split a SQuAD file "
                          "by article with train_articles")
    if len(task.eval_splits) != 1:
        splits = ", ".join(task.eval_splits)
        where = os.path.join(data_dir or "DIR", task.glue_dir or task.name, "dev_matched.tsv")  # (MNLI's, the one)
        raise DynaKDError(f"--dev-split needs a task with one eval split; {task.name} has {splits}: cut one of "
                          f"its dev files as your own, --task csv --train-file {where} --dev-split 0.5 "
                          "--text-columns sentence1,sentence2 --label-column gold_label")


def _check_transfer(cfg: DistillConfig, task) -> None:
    """Transfer rows carry no label: they need a teacher, and a labelled subset to follow."""
    if task.is_qa:
        raise DynaKDError("transfer_samples applies to classification and regression tasks, not extractive QA")
    if cfg.max_train_samples is None:
        raise DynaKDError("transfer_samples takes the rows after the max_train_samples subset; set max_train_samples")
    if cfg.method == "task":
        raise DynaKDError("transfer_samples: the transfer rows have no labels, and method 'task' (and finetune) has "
                          "no teacher to learn them from; use kd or full")


def _check_cuda_graphs(cfg: DistillConfig) -> None:
    """``cuda_graphs`` records the pooled dynamics per batch size (cudagraphs.py); what it cannot record is refused
    rather than run eagerly without a word. A method without the dynamics term simply has nothing to record (a sweep
    may set it for every cell)."""
    if not cfg.cuda_graphs:
        return
    if cfg.torch_compile:
        raise DynaKDError("choose one of cuda_graphs and torch_compile: torch.compile compiles the dynamics itself "
                          "(--torch-compile-mode reduce-overhead records them in CUDA graphs)")
    if cfg.terms["feature"] == "dynamics" and cfg.dynamics.pooling == "tokens":
        raise DynaKDError("cuda_graphs records pooled dynamics (dynamics.pooling mean or cls), whose shapes the batch "
                          "size alone decides; pooling 'tokens' would need a graph per padded length")


def _check_teacher_cache(value: str) -> None:
    """``auto``, ``off`` or a folder; a bare word that reads like a misspelt choice (``of``, ``none``, ``false``) is
    refused rather than made a cache folder of that name."""
    if value in ("auto", "off"):
        return
    path = Path(value)
    if not path.name:  # '', '.' or '/': the cache folder needs a name (its lock file is named after it)
        raise DynaKDError(f"teacher_cache: '{value}' names no folder of its own; give e.g. ./teacher-cache")
    if not (where := existing_part(path)).is_dir():
        raise DynaKDError(f"teacher_cache: {value} is a file, not a folder" if where == path else
                          f"teacher_cache: {value} is inside a file")
    if "/" in value or path.exists():
        return
    word = value.lower()
    match = "off" if word in ("none", "no", "false", "0", "disable", "disabled") else None
    match = match or next(iter(difflib.get_close_matches(word, ["auto", "off"], n=1, cutoff=0.6)), None)
    if match:
        raise DynaKDError(f"teacher_cache: '{value}' is not auto, off or a folder (did you mean '{match}'? a new "
                          f"folder of that name would be written as ./{value}/)")


def _check_dynamics(cfg: DistillConfig) -> None:
    dyn = cfg.dynamics
    if cfg.terms["feature"] != "dynamics":
        if cfg.hidden_weight is not None:
            raise DynaKDError(f"hidden_weight adds a hidden-state term to a dynamics method (full, dynamics); method "
                              f"'{cfg.method}' " + ("has it already (beta weights it)" if cfg.method == "static"
                                                    else "has no feature dynamics"))
        return
    if not dyn.components:
        raise DynaKDError("dynamics.components is empty: enable at least one component or use --method kd")
    if not dyn.forms and set(dyn.components) - {"relations"}:
        raise DynaKDError("dynamics.forms is empty: deviation, layer_change, sensitivity need direction or magnitude")
    if dyn.pooling == "tokens" and dyn.relation_angle:
        raise DynaKDError("dynamics.relation_angle with pooling 'tokens' needs O(B T^3 d) memory; use pooled dynamics")
    if dyn.pooling == "tokens" and dyn.reference != "batch":
        raise DynaKDError("dynamics.reference must be 'batch' with pooling 'tokens' (references are pooled means; "
                          "extractive QA pools by token unless told otherwise: --set dynamics.pooling=mean compares "
                          "pooled windows, where a reference applies)")
    if dyn.token_sample is not None and dyn.pooling != "tokens":
        raise DynaKDError(f"dynamics.token_sample draws tokens for token-level dynamics (pooling 'tokens', extractive "
                          f"QA's), not for pooling '{dyn.pooling}': leave it unset")
    if dyn.token_sample is not None and dyn.token_sample < 3:  # (two tokens centred are opposites: no structure)
        raise DynaKDError(f"dynamics.token_sample must be a whole number >= 3 (the forms of two tokens, centred, are "
                          f"alike for every model), got {dyn.token_sample}")
    if dyn.token_sample is not None and dyn.relation_pairs == "adjacent":
        raise DynaKDError("dynamics.relation_pairs 'adjacent' compares neighbouring tokens, which tokens drawn by "
                          "dynamics.token_sample are not: use relation_pairs 'all', or leave token_sample unset")
    from ..data.tasks import get_task

    if dyn.reference == "dataset" and dyn.qa_tokens == "context" and get_task(cfg.task).is_qa:
        # The pre-pass that takes the dataset mean pools every real token; these deviations pool context tokens.
        raise DynaKDError("dynamics.reference 'dataset' pools every token, so it does not fit qa_tokens 'context'; "
                          "use reference 'batch' or 'ema'")


def _check_finite(cfg: DistillConfig) -> None:
    """Every number of the config finite: ``inf`` passes the range checks (``> 0``) and then ended in a traceback
    (``epochs``) or a non-finite loss that blamed another term."""
    def walk(value, where):
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                yield from walk(getattr(value, f.name), f"{where}.{f.name}" if where else f.name)
        elif isinstance(value, dict):
            for k, v in value.items():
                yield from walk(v, f"{where}.{k}")
        elif isinstance(value, float) and not math.isfinite(value):
            yield where, value

    for where, value in walk(cfg, ""):
        raise DynaKDError(f"{where} must be a finite number, got {value}")


def _check_data_flags(cfg: DistillConfig, task) -> None:
    """Folders, files and columns a task does not read are refused: a GLUE task given --train-file used to train on
    GLUE's data (and record the file in the run folder as if it had read it), SQuAD or csv given --data-dir the same.
    ``--synthetic`` reads none: with a data folder or file it trained on the built-in corpus without a word, and
    recorded both."""
    _check_dataset_flags(cfg, task)
    if not task.is_user_data:
        files = [f for f, v in (("train_file", cfg.train_file), ("validation_file", cfg.validation_file)) if v]
        columns = [f for f, v in (("text_columns", cfg.text_columns), ("label_column", cfg.label_column != "label"))
                   if v]
        unread = columns if task.is_qa else files + columns
        if unread:
            reads = "SQuAD JSON files (train_file, validation_file)" if task.is_qa else \
                "the GLUE TSV files of --data-dir, or the hub"
            raise DynaKDError(f"task {task.name} reads {reads}, not {', '.join(unread)}: those are for --task csv or "
                              "json (your own files)")
    if cfg.data_dir and not task.reads_data_dir:  # (it went unread, and into the run's record)
        reads = "SQuAD JSON files (train_file, validation_file; the hub's without them)" if task.is_qa else \
            "your own files (train_file, validation_file)"
        raise DynaKDError(f"task {task.name} reads {reads}, not data_dir, a folder in GLUE's layout")
    named = [k for k in DATA_PATHS if getattr(cfg, k)]
    if cfg.synthetic and named:
        raise DynaKDError(synthetic_with(f"--{named[0].replace('_', '-')}"))


def _check_dataset_flags(cfg: DistillConfig, task) -> None:
    """Task 'dataset' reads ``dataset`` (its name or folder) and no files; another task reads no dataset by name: its
    settings went unread."""
    if task.reads_dataset:
        if not cfg.dataset:
            raise DynaKDError("--task dataset needs --dataset NAME: a hub dataset (imdb, user/name), a folder of data "
                              "files, or a folder written by save_to_disk")
        if cfg.synthetic:
            raise DynaKDError(synthetic_with("--dataset"))
        if cfg.dev_split is not None and cfg.train_split != DistillConfig.train_split:
            raise DynaKDError(f"--dev-split cuts the evaluation split (--eval-split {cfg.eval_split}) into training "
                              f"and evaluation rows, so --train-split {cfg.train_split} would go unread: give that "
                              f"split as --eval-split {cfg.train_split}")
        if files := [f"--{f.replace('_', '-')}" for f in ("train_file", "validation_file") if getattr(cfg, f)]:
            raise DynaKDError(f"--task dataset reads --dataset {cfg.dataset}, not {', '.join(files)}: files of your "
                              "own are --task csv or json")
        return
    if given := [k for k in DATASET_KEYS if getattr(cfg, k) != getattr(DistillConfig, k)]:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in given)
        raise DynaKDError(f"{flags} name{'s' if len(given) == 1 else ''} a dataset of your own, which --task dataset "
                          f"reads; task {task.name} does not")


def synthetic_with(flag: str) -> str:
    """What ``--synthetic`` given with a data folder or file (``flag``) is told."""
    return f"--synthetic trains on the built-in corpus and reads no files: choose one of --synthetic and {flag}"


def _check_dynamics_choices(dyn: DynamicsConfig) -> None:
    _check_choices(dyn.components, COMPONENTS, "dynamics.components")
    _check_choices(dyn.forms, FORMS, "dynamics.forms")
    _check_choices(list(dyn.weights), COMPONENTS, "dynamics.weights")


def _check_choices(values: list[str], valid: tuple[str, ...], where: str) -> None:
    for v in values:
        if v not in valid:
            hint = difflib.get_close_matches(v, valid, n=1)
            extra = f"; did you mean '{hint[0]}'?" if hint else ""
            raise DynaKDError(f"{where}: unknown '{v}' (valid: {', '.join(valid)}){extra}")
