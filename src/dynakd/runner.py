"""The three jobs behind the CLI and the Python API: ``finetune``, ``distill`` and ``evaluate``.

Order of work: validate the config, check the output folder, load data, load models, check compatibility, then
train. Everything a user can get wrong is checked before the first training step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_utils import TrainOutput

from . import atomic, hub, jsonfile, teacher_scores
from .bars import close_progress_bars, open_bars
from .cache import TeacherCache, live_dataset_mean, prepare_teacher_cache
from .card import add_evaluation, method_label, model_ref, parameters_said, write_model_card
from .checkpoints import (
    check_launch,
    checkpoint_step,
    io_reason,
    latest_checkpoint,
    launch_record,
    remove_checkpoints,
)
from .config import DistillConfig, as_config, build_config, typed, underscored, validate
from .data import squad
from .data.load import encode, load_data
from .data.prepare import (
    DistillationCollator,
    check_labels,
    note_cut_rows,
    pad_multiple,
    padding_side,
    shared_tokenizer,
)
from .data.squad import QAEval
from .data.tasks import TaskSpec
from .distiller import Distiller, logits_always_reached
from .distributed import check_one_gpu_per_process, first_process_first, is_first_process, launched_processes, note
from .errors import DynaKDError, first_line
from .evaluation import EvalTrainer
from .features import EXAMPLE_ID
from .lending import lent_config, note_other_task
from .losses import task_loss
from .metrics import compute_metrics
from .models import (
    check_model_folder,
    check_model_loads,
    check_seq_length,
    check_student_request,
    load_student,
    load_task_model,
    load_tokenizer,
    outputs_said,
    ready_to_pad,
    remote_code,
)
from .notes import tell
from .rundir import (
    CONFIG_NAME,
    EVALUATE_PREDICTIONS,
    PREDICTIONS,
    check_output,
    check_writable,
    describe_model,
    discard_output,
    earlier_metrics,
    home_relative,
    metrics_record,
    note_not_read,
    note_not_read_by_task,
    note_teacher_cache_switch,
    prepare_output,
    recorded_settings,
    resume_point,
    run_lock,
    same_file,
    write_metrics,
)
from .trainer import DistillationTrainer


@dataclass
class RunResult:
    """What ``finetune``, ``distill`` and ``evaluate`` return: the folder written (a run's: the model, ``metrics.json``,
    ``dynakd.yaml``, ...; for ``evaluate``, where its ``metrics.json`` went) and the record written to its
    ``metrics.json`` (``eval``, ``model``, a run's ``train`` and ``teacher_eval``, the command, task and seed, ...;
    for ``evaluate``, as the file holds it at the top or under ``evaluate``)."""

    output: Path
    metrics: dict[str, Any]


def check_precision(cfg: DistillConfig) -> None:
    """Refuse a precision this machine cannot give: first thing in a run, and when a bench builds its arguments."""
    if cfg.fp16 and _cpu_only():  # accelerate would train in float32 without a word: fp16 autocast needs a GPU
        raise DynaKDError("--fp16 needs a GPU (on CPU it would silently run in float32); use --bf16 on CPU")


def training_args(cfg: DistillConfig, out: Path, student=None) -> TrainingArguments:
    """The Trainer's arguments; settings it rejects (e.g. bf16 on a machine without it) become a DynaKDError.
    ``student``: the model trained, whose architecture may hold parameters it never uses (``find_unused``)."""
    check_precision(cfg)
    try:
        return _training_args(cfg, out, find_unused(cfg, student))
    except (ValueError, ImportError) as e:
        raise DynaKDError(f"invalid training settings: {first_line(e)}") from None


# Architectures with parameters that classifying never reads (XLNet's mask_emb, read with a target_mapping alone)
UNUSED_BY_DESIGN = {"xlnet"}


def find_unused(cfg: DistillConfig, student=None) -> bool:
    """``ddp_find_unused_parameters`` as given, else whether some step may leave a student parameter without a
    gradient: no term that reads the logits weighs anything there, or an architecture with parameters classifying never
    reads. DDP told to expect none fails at the second step where one is; told to look, it warns that it found none
    and walks the graph each step."""
    if cfg.ddp_find_unused_parameters is not None:
        return cfg.ddp_find_unused_parameters
    model_type = getattr(getattr(student, "config", None), "model_type", None)
    return model_type in UNUSED_BY_DESIGN or not logits_always_reached(cfg)


def _training_args(cfg: DistillConfig, out: Path, find_unused_parameters: bool) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(out),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        per_device_eval_batch_size=cfg.eval_batch_size,
        learning_rate=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,  # transformers 5 reads a float below 1 as a fraction of the steps
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        fp16=cfg.fp16,
        bf16=cfg.bf16,
        torch_compile=cfg.torch_compile,
        torch_compile_mode=cfg.torch_compile_mode,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        logging_steps=cfg.logging_steps,
        logging_first_step=True,  # every loss term and weight reaches TensorBoard even in a run shorter than N steps
        eval_strategy="steps" if cfg.eval_steps else "epoch",
        eval_steps=cfg.eval_steps,
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or None,
        save_total_limit=2,  # the newest and the one before it
        report_to=list(cfg.report_to),
        remove_unused_columns=False,  # keep the teacher_* columns
        label_names=["labels"],
        disable_tqdm=not cfg.progress,
        # batches (and the teacher-cache rows in them) go to the GPU from pinned memory without waiting for the
        # kernels already queued there; not under cuda_graphs with workers, whose loader pins in a thread of its own:
        # a CUDA call there while a graph is being recorded (process-wide capture) breaks the recording
        dataloader_pin_memory=torch.cuda.is_available() and not (cfg.cuda_graphs and cfg.dataloader_num_workers > 0),
        accelerator_config={"non_blocking": torch.cuda.is_available()},
        # DistillationTrainer stops on a non-finite loss before its backward pass (_check_finite); the Trainer's own
        # filter would test the same loss again after it, one more wait for the GPU per step
        logging_nan_inf_filter=False,
        dataloader_num_workers=cfg.dataloader_num_workers,
        ddp_find_unused_parameters=find_unused_parameters,
        use_cpu=_cpu_only(),
    )


def _cpu_only() -> bool:
    """Train on CPU processes: no CUDA and no other accelerator, or several processes on Apple MPS (which has no
    multi-process backend). The Trainer needs ``use_cpu`` for these: without it several processes (``torchrun``)
    stay unaware of each other instead of forming a gloo group, and ``--bf16`` is refused."""
    if torch.cuda.is_available():
        return False
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6
    other = accelerator.is_available() if accelerator is not None else torch.backends.mps.is_available()
    several = launched_processes() > 1
    return not other or (several and torch.backends.mps.is_available())


def _metric_fn(task: TaskSpec):
    """The Trainer's ``compute_metrics``. Predictions that are a tuple (a model's other outputs gathered beside its
    logits, which ``EvalTrainer`` and ``DistillationTrainer`` leave out) are scored on the first, the logits, as
    transformers' run_glue does. The loss too, the task's (a model's own, the student's task term: the runs smooth no
    labels), which the Trainer's ``eval_loss`` becomes: under several processes the Trainer's own counted the rows
    repeated to even out the last batches (a batch's mean loss over them, repeated per row, of which the rows kept
    for the scores kept copies), where the predictions are those of the dev set's rows, each once."""
    def scores(p) -> dict[str, float]:
        logits = p.predictions[0] if isinstance(p.predictions, tuple) else p.predictions
        logits, labels = np.asarray(logits), np.asarray(p.label_ids)
        loss = task_loss(torch.from_numpy(logits), torch.from_numpy(labels), regression=task.is_regression)
        return {**compute_metrics(task, logits, labels), "loss": float(loss)}
    return scores


def _eval_sets(task: TaskSpec, data):
    if len(task.eval_splits) == 1:
        return data[task.eval_splits[0]]
    return {split: data[split] for split in task.eval_splits}


def _strip(metrics: dict[str, float]) -> dict[str, float]:
    """The Trainer's metrics without its ``eval_`` prefix and its bookkeeping (the epoch, and the model preparation
    time it adds per evaluation set: ``eval_model_preparation_time``, ``eval_<split>_model_preparation_time``)."""
    return {k.removeprefix("eval_"): v for k, v in metrics.items()
            if k != "epoch" and not k.endswith("model_preparation_time")}


def finetune(cfg: DistillConfig | dict) -> RunResult:
    """Train ``cfg.model`` on the task alone (a teacher, or a task-only student). ``cfg``: a DistillConfig or a dict
    of config keys."""
    # checked as what runs, method task (a shared config's distillation settings are not read)
    given = underscored(cfg) if isinstance(cfg, dict) else None
    cfg = as_config({**cfg, "method": "task"} if isinstance(cfg, dict) else dataclasses.replace(cfg, method="task"),
                    "finetune")
    if given is not None:  # (a dict names what it gives, as the command line's flags do)
        note_not_read_by_task(cfg, given)
    if not cfg.model:
        raise DynaKDError("finetune needs --model (a checkpoint folder or hub id)")
    with run_scope(cfg.progress, cfg.trust_remote_code):
        return _train(cfg, "finetune", teacher_name=None)


def distill(cfg: DistillConfig | dict) -> RunResult:
    """Distil ``cfg.teacher`` into a student with ``cfg.method`` and ``cfg.align``. ``cfg``: a DistillConfig or a
    dict of config keys; a dict takes the task, data and input length of a DynaKD teacher's run where it names none,
    as the command line does (``lending.teacher_task``)."""
    cfg = _lending(cfg, "distill")
    if not cfg.teacher:
        raise DynaKDError("distill needs --teacher (a fine-tuned checkpoint folder or hub id)")
    if not cfg.student and not cfg.student_layers and not cfg.student_layer_ids:
        raise DynaKDError("distill needs --student M, --student-layers K or --student-layer-ids")
    with run_scope(cfg.progress, cfg.trust_remote_code):
        return _train(cfg, "distill", teacher_name=cfg.teacher)


def _lending(cfg: DistillConfig | dict, command: str) -> DistillConfig:
    """``cfg`` as a config, with what a run folder lends ``command`` where a dict config is silent
    (``lending.lent_config``), and a note of the settings its method does not read, as on the command line. A dict
    names the settings it gives, as the command line's flags do; a DistillConfig holds every setting, so nothing is
    lent to it."""
    if not isinstance(cfg, dict):
        return as_config(cfg, command)
    given = underscored(cfg)
    typed(DistillConfig, given)  # (a model object where a path belongs is refused before lending reads it as one)
    cfg = lent_config(command, given, lambda lent: build_config(lent, given))
    if command == "distill":
        note_not_read(cfg, given)
    return cfg


@contextlib.contextmanager
def run_scope(progress: bool, trust_remote_code: bool = False):
    """One run's changes to the process, undone after it (a notebook calls ``distill`` many times): the libraries'
    bars (``library_bars``), the hub's offline switch (``hub.offline_for_this_run``), whether models may run their
    own code (``models.remote_code``), notes said once a run; and the progress bars of a run that stopped (an
    interrupt, an error), closed, which the next run's drew below."""
    squad.forget_notes()
    callers = open_bars()  # (a notebook's own bar over its runs stays open)
    try:
        with library_bars(progress), hub.offline_for_this_run(), remote_code(trust_remote_code):
            yield
    except BaseException:
        close_progress_bars(keep=callers)
        raise


@contextlib.contextmanager
def library_bars(progress: bool):
    """``progress: false`` hides the libraries' bars too (tokenising, loading and writing weights) during the run,
    as the CLI does for every run; a Python caller would otherwise still see them. Restored afterwards."""
    import datasets
    from transformers.utils import logging as hf_logging

    before = datasets.is_progress_bar_enabled(), hf_logging.is_progress_bar_enabled()
    if not progress:
        datasets.disable_progress_bars()
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if before[0]:
            datasets.enable_progress_bars()
        if before[1]:
            hf_logging.enable_progress_bar()


def _check_run(cfg: DistillConfig, command: str, teacher_name: str | None):
    """Everything that can be checked before data or models load but the checkpoint to resume from (``_train``
    finds it once it holds the folder): the config, the model folders, the hub repository and the output folder.
    Returns the validated config, the teacher's name (a ~ in a YAML path expanded) and the output folder."""
    cfg = validate(cfg)
    teacher_name = cfg.teacher if teacher_name else None
    check_precision(cfg)
    check_one_gpu_per_process()
    configs = {}
    for name in (teacher_name, cfg.student, cfg.model if command == "finetune" else None):
        if name:
            check_model_folder(name)
            configs[name] = check_model_loads(name)  # (an encoder-decoder refused before the data loads)
    if teacher_name:
        check_student_request(cfg, teacher_name, config=configs[teacher_name])
    if cfg.push_to_hub and is_first_process():  # only process 0 pushes (its card names the repository whole)
        cfg = dataclasses.replace(cfg, push_to_hub=hub.check_push(cfg.push_to_hub, cfg.hub_private))
    for path in (cfg.train_file, cfg.validation_file):  # (before the output folder: a folder holding a run named a
        # mistyped file as the setting that made this a different run)
        if path and not os.path.exists(os.path.expanduser(path)):
            raise DynaKDError(f"data file not found: {path}")
    out = check_output(cfg, command)
    check_writable(out)
    return cfg, teacher_name, out


def _train(cfg: DistillConfig, command: str, teacher_name: str | None) -> RunResult:
    cfg, teacher_name, out = _check_run(cfg, command, teacher_name)
    with run_lock(out):  # (process 0) a second start in the folder is refused before it reads a checkpoint
        # process 0 decides before any model loads; the others read the folder once it holds it (first_process_first
        # in _run_training): a second launch's other processes read checkpoints the first run was rotating
        resume = _resume(cfg, command, out) if is_first_process() else None
        return _run_training(cfg, command, teacher_name, out, resume)


def _resume(cfg: DistillConfig, command: str, out: Path) -> Path | None:
    """The checkpoint to resume from, checked against this launch (the trainer checks again, for its own users);
    the folder checked again first, now that no other start can finish a run in it meanwhile."""
    check_output(cfg, command)
    resume = resume_point(cfg, out)
    if resume is not None:
        check_launch(resume, launch_record(launched_processes(), cfg.batch_size, cfg.gradient_accumulation_steps))
    return resume


def _run_training(cfg: DistillConfig, command: str, teacher_name: str | None, out: Path,
                  resume: Path | None) -> RunResult:
    note_batch_of_one(cfg)
    note_cuda_graphs(cfg)
    task, data = load_data(cfg, labels_of=teacher_name)  # (fine-tuning takes the files' labels: a head may change)
    if not task.is_qa:
        check_labels(data, task.num_labels, task.is_regression)
    if task.is_regression and teacher_name and cfg.terms["logit"] and cfg.temperature != DistillConfig.temperature:
        # (a csv task is regression by its labels, read here: a sweep over temperature ran alike cells without a word)
        note(f"temperature {cfg.temperature:g} is not read: a regression task's logit term is the squared distance "
             "to the teacher's prediction; the run trains as it would without")
    set_seed(cfg.seed)  # new heads and projections are initialised from the run's seed, whatever ran before
    # the teacher's files as they are before it loads: a folder rewritten during a long run (an --overwrite fine-tune,
    # another shard) would key the scores of the model loaded under the files of another (a hub model: its revision)
    recordable = teacher_name is not None and launched_processes() <= 1  # (teacher_scores: one process only)
    before = teacher_scores.model_files(teacher_name) if recordable else None
    student, tokenizer, teacher, t_tok = _load_models(cfg, task, teacher_name)
    teacher_files = before or (teacher_scores.model_files(teacher_name, teacher) if recordable else None)
    # one encoding for both models when their tokenizers agree (each model then takes the inputs it accepts: a BERT
    # teacher its token_type_ids, a DistilBERT student none), else the teacher's own beside the student's
    shared = shared_tokenizer(tokenizer, t_tok, qa=task.is_qa)
    encoder, teacher_encoder = (tokenizer, t_tok) if shared is None else (shared, None)
    distiller = build_distiller(cfg, student, teacher, task, same_tok=teacher_encoder is None)
    # (after the refusal of terms that need one tokenizer; method task compares nothing with the teacher, which it
    # scores beside the student)
    if teacher_encoder is not None and cfg.method != "task":
        note("the teacher and the student tokenize differently: the rows are encoded for each, and the "
             "student is compared with the teacher row by row")
    encoded, qa_eval = encode(cfg, task, data, encoder, teacher_encoder)
    if not task.is_qa:  # (QA's windows cover a long context whole)
        note_cut_rows(encoded, cfg.max_seq_length)
    args = training_args(cfg, out, student)
    collator = _collator(cfg, task, args.device, (student, encoder), (teacher, teacher_encoder))
    main_process = args.process_index == 0
    if teacher is not None:
        teacher.to(args.device).eval()
    cache, resume = _output_and_cache(cfg, command, out, resume, teacher, encoded["train"], collator, args.device,
                                      main_process)
    if cache is not None:
        encoded["train"] = encoded["train"].add_column(EXAMPLE_ID, list(range(len(encoded["train"]))))
        cache.vouch(encoded["train"])  # (the rows it was checked against or built from, numbered in that order)
    trainer = DistillationTrainer(
        model=student,
        args=args,
        train_dataset=encoded["train"],
        eval_dataset=_eval_sets(task, encoded),
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=None if task.is_qa else _metric_fn(task),
        teacher=teacher,
        distiller=distiller,
        teacher_cache=cache,
        qa_eval=qa_eval,
        save_on_non_finite=True,  # the last good state to inspect, with --save-steps 0 too
    )
    trainer.tokenizers_compared = True  # (shared_tokenizer: one encoding only where they agree)
    trainer.eval_longest_first = True  # (its metrics do not follow the order of rows)
    set_dataset_reference(cfg, distiller, teacher, cache, encoded["train"], collator, args.device,
                          trainer.accelerator.autocast())
    if resume is not None and main_process:  # the trainer loads the distiller's state with the checkpoint's
        tell(f"resuming from {resume}")
    start = time.perf_counter()
    train_out = _train_saying_next(trainer, cfg, out, resume, main_process)
    train_time = time.perf_counter() - start
    logged = list(trainer.state.log_history)  # (what train() logged: the final evaluation below is not in its time)
    metrics = {"eval": _strip(_final_eval(trainer, train_out.global_step)), **eval_split_rows(data)}
    if teacher is not None and cfg.eval_teacher:
        metrics["teacher_eval"], recorded = score_teacher(teacher, t_tok, task, data, cfg, teacher_name,
                                                          args.device, teacher_files)
        if recorded is not None:  # (where the teacher's scores came from: an earlier run's evaluation)
            metrics["teacher_eval_recorded"] = home_relative(recorded)
    metrics["train"] = _train_record(train_out, train_time, resume, cache, args.world_size, logged, collator.multiple)
    _save_run(trainer, tokenizer, out, command, scored_as(cfg, task, data), task, metrics, main_process)
    write_predictions(out / PREDICTIONS, trainer)  # (of the final evaluation: extractive QA's answers)
    if cfg.push_to_hub and main_process:
        _push(cfg, command, task, out)
    return RunResult(out, metrics_record(command, cfg, task, metrics))  # (as metrics.json holds it)


def _output_and_cache(cfg: DistillConfig, command: str, out: Path, resume: Path | None, teacher, train, collator,
                      device, main_process: bool) -> tuple[TeacherCache | None, Path | None]:
    """Prepare the run folder (process 0) and the teacher cache; return the cache (None: the live teacher) and the
    checkpoint to resume from (the other processes read process 0's)."""
    # how the run's last start read the teacher, by its record (before this start's replaces it): for a checkpoint
    # that does not say (note_teacher_cache_switch)
    cached_before = recorded_settings(out, ("teacher_cache",)).get("teacher_cache")
    # process 0 of all machines writes, the others then read (a cache folder not shared is built once per machine);
    # they wait as long as the teacher's pass over the training set takes, while a hang elsewhere fails in 30 minutes
    with first_process_first():
        if main_process:
            prepare_output(cfg, command, resume)
        else:  # process 0 holds the folder and has prepared it: the same checkpoint as process 0's, or none
            resume = _resume(cfg, command, out)
        try:
            cache = prepare_teacher_cache(cfg, teacher, train, collator, device)
        except BaseException:  # refused, failed or interrupted (Ctrl-C)
            if main_process and resume is None:  # leaves no run behind, whose dynakd.yaml would refuse the
                discard_output(out)  # corrected command as a different run
            raise
    if resume is not None:  # (once the cache is decided: auto reads none in a run shorter than an epoch)
        note_teacher_cache_switch(cfg, resume, cache is not None, cached_before)
    return cache, resume


def _collator(cfg: DistillConfig, task: TaskSpec, device, student: tuple[Any, Any],
              teacher: tuple[Any, Any]) -> DistillationCollator:
    """The batches' collator: each ``(model, encoder)``'s encoding padded on the side its model reads (one side for
    both where the teacher's encoder is None: one encoding), to the device's multiple, at most ``max_seq_length``."""
    (model, encoder), (teacher_model, teacher_encoder) = student, teacher
    qa = task.is_qa
    sides = ((padding_side(model, teacher_model, qa=qa),) * 2 if teacher_encoder is None  # (one encoding for both)
             else (padding_side(model, qa=qa), padding_side(teacher_model, qa=qa)))
    return DistillationCollator(encoder, teacher_encoder, task.is_regression,
                                pad_to_multiple_of=pad_multiple(cfg, device), max_length=cfg.max_seq_length,
                                sides=sides)


def _train_saying_next(trainer: DistillationTrainer, cfg: DistillConfig, out: Path, resume: Path | None,
                       main_process: bool) -> TrainOutput:
    """``trainer.train()`` from ``resume``; interrupted (Ctrl-C, or a SIGTERM: cli.Terminated), say what the same
    command does next: resume from the checkpoint saved, or start again."""
    try:
        return trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except KeyboardInterrupt as e:
        if not main_process or cfg.overwrite:  # (with --overwrite the same command starts again: a sweep cell's)
            raise
        saved = latest_checkpoint(out)
        none = "no checkpoint is saved (--save-steps 0)" if not cfg.save_steps else "no checkpoint was saved yet"
        raise type(e)(f"{saved} is saved: the same command resumes from it" if saved is not None
                      else f"{none}: the same command starts the run again") from None


def _push(cfg: DistillConfig, command: str, task: TaskSpec, out: Path) -> None:
    """Push the run folder to the hub, its models named as the card names them: the commit message is public, the
    machine's paths are not."""
    what = (f"{method_label(cfg)} from {model_ref(cfg.teacher)}" if command == "distill"
            else f"from {model_ref(cfg.model)}")
    url = hub.push_folder(out, cfg.push_to_hub, private=cfg.hub_private,
                          message=f"dynakd {command} on {task.name}: {what}")
    tell(f"pushed {out} to {url}")


def note_batch_of_one(cfg: DistillConfig) -> None:
    """Say so when a batch of one sample leaves pooled dynamics forms without signal (accumulating gradients does not
    change what a batch holds): a lone sample's direction (Gram [[1]]) and relative magnitude (1) are constants
    whatever the reference, it has no other sample to relate to, and a change centred over the batch is 0. What is
    left is the magnitude of a change relative to its base (layer_change, sensitivity)."""
    gathered = cfg.dynamics.gather and launched_processes() > 1  # one batch of every process's
    if cfg.batch_size > 1 or cfg.terms["feature"] != "dynamics" or cfg.dynamics.pooling == "tokens" or gathered \
            or not is_first_process():
        return
    relative = "magnitude" in cfg.dynamics.forms
    changes = [c for c in cfg.dynamics.components if c in ("layer_change", "sensitivity")]
    silent = [c for c in cfg.dynamics.components if c in ("deviation", "relations") or (c in changes and not relative)]
    partly = [c for c in changes if relative and "direction" in cfg.dynamics.forms]
    said = [f"{' and '.join(silent)} learn nothing"] if silent else []
    said += [f"{' and '.join(partly)} only through the magnitude form"] if partly else []
    if said:
        note(f"with batch_size 1 the dynamics component(s) {', and '.join(said)} (these forms compare the samples "
             "of a batch); use a larger batch")


def note_cuda_graphs(cfg: DistillConfig) -> None:
    """Say so when torch.compile's CUDA graphs would capture the dynamics losses on a GPU: on one H200 with torch 2.11
    the `full` step crashed the process under them (a segfault, which has no message of its own;
    benchmarks/speed/RESULTS.md); and when ``cuda_graphs`` has nothing to record, or no GPU to record on."""
    if not is_first_process():
        return
    dynamics = cfg.terms["feature"] == "dynamics"
    graphs = cfg.torch_compile_mode in ("reduce-overhead", "max-autotune")  # the modes that capture CUDA graphs
    if graphs and dynamics and torch.cuda.is_available():
        note(f"--torch-compile-mode {cfg.torch_compile_mode} (CUDA graphs) with the dynamics term crashed the "
             "process on an H200 with torch 2.11 (a segfault); if this run does, use --torch-compile, which compiles "
             "without CUDA graphs, or --cuda-graphs, which records the dynamics without torch.compile")
    if cfg.cuda_graphs and not dynamics:
        note(f"--cuda-graphs records the dynamics term, which method '{cfg.method}' does not have")
    elif cfg.cuda_graphs and not torch.cuda.is_available():
        note("--cuda-graphs needs a CUDA device: the dynamics run eagerly here (same results)")


def _train_record(train_out, train_time: float, resume: Path | None, cache, processes: int,
                  log_history: list[dict[str, Any]], padding: int | None = None) -> dict[str, Any]:
    """How the training went, for ``metrics.json``: time (training, and the evaluations ``train()`` ran between
    steps, apart), steps, speed (of the steps this run trained: a resumed run trains the rest), final loss, the
    teacher cache it read, the number of processes and the multiple its batches padded to (1: none)."""
    first = checkpoint_step(resume) if resume else 0
    evaluating = sum(v for entry in log_history if entry.get("step", 0) > first
                     for k, v in entry.items() if k.startswith("eval") and k.endswith("_runtime"))
    training = max(train_time - evaluating, 1e-9)
    return {
        "runtime_s": round(training, 1),
        "eval_runtime_s": round(evaluating, 1),
        "steps": train_out.global_step,
        "steps_per_second": round((train_out.global_step - first) / training, 3),
        "loss": round(train_out.training_loss, 5) if train_out.global_step > first else None,  # none trained here
        "teacher_cache": home_relative(cache.folder) if cache else None,
        "processes": processes,
        "pad_to_multiple_of": padding or 1,
        "resumed_from": resume.name if resume else None,
    }


def set_dataset_reference(cfg: DistillConfig, distiller, teacher, cache, train_ds, collator, device,
                          precision=None) -> None:
    """The ``dataset`` reference: the teacher's exact training-set mean, from the cache (whose features the run reads)
    or one pre-pass under ``precision``, the autocast the live teacher runs under."""
    if teacher is None or cfg.dynamics.reference != "dataset" or distiller.feature != "dynamics":
        return
    pooling = cfg.dynamics.pooling
    mean = cache.dataset_mean(pooling) if cache else live_dataset_mean(
        teacher, train_ds, collator, batch_size=cfg.eval_batch_size, device=device, pooling=pooling,
        progress=cfg.progress, precision=precision)
    distiller.set_dataset_reference(mean)


def share_like_the_rest(out: Path) -> None:
    """Give the weight files the permissions of any new file (the umask's): safetensors writes them through a private
    temporary file, so they came out readable by their owner alone, unlike the config and tokenizer beside them."""
    mask = os.umask(0)
    os.umask(mask)
    for weights in out.glob("*.safetensors"):
        weights.chmod(0o666 & ~mask)


def eval_split_rows(data) -> dict[str, dict[str, int]]:
    """``{"eval_split_rows": {split: rows}}``: the rows each evaluation split's file or hub split held as loaded,
    before a dev split or a ``max_eval_samples`` subset drew from it (the card tells GLUE's own files from files of
    one's own in its layout by them); nothing for extractive QA, whose windows are scored by question."""
    rows = getattr(data, "loaded_eval_rows", None)
    return {"eval_split_rows": dict(rows)} if rows else {}


def scored_as(cfg: DistillConfig, task: TaskSpec, data) -> DistillConfig:
    """``cfg`` as its scores are recorded (metrics.json, the card): a ``max_eval_samples`` at or above every evaluation
    split's size scored the whole split (they were called a subset, and a run of the same rows told to cap them)."""
    sizes = getattr(data, "full_eval_rows", None)  # (load_data's: the splits' rows before the cut)
    if cfg.max_eval_samples is not None and sizes and all(n <= cfg.max_eval_samples for n in sizes.values()):
        return dataclasses.replace(cfg, max_eval_samples=None)
    return cfg


def _save_run(trainer, tokenizer, out: Path, command: str, cfg: DistillConfig, task: TaskSpec, metrics, main: bool):
    """The model, tokenizer and metrics (process 0 only); checkpoints go once the run is safely saved."""
    try:
        trainer.save_model(str(out))  # collective under FSDP / DeepSpeed: every process calls it
        if main:
            share_like_the_rest(out)
            tokenizer.save_pretrained(str(out))
            metrics["model"] = describe_model(trainer.model, out)
            write_metrics(out, command, cfg, task, metrics)
            write_model_card(out, command, cfg, task, metrics)
    except (OSError, RuntimeError) as e:  # RuntimeError: torch.save's zip writer on a full disk
        raise DynaKDError(f"cannot save the trained model to {out}: {io_reason(e)}") from None
    trainer.accelerator.wait_for_everyone()
    if main and not cfg.keep_checkpoints:
        remove_checkpoints(out)
    if "model" not in metrics:  # processes other than 0 did not describe it above
        metrics["model"] = describe_model(trainer.model, out)


def _load_models(cfg: DistillConfig, task: TaskSpec, teacher_name: str | None):
    """``(student, tokenizer, teacher, teacher_tokenizer)``; no teacher (None, None) for fine-tuning."""
    if not teacher_name:
        # finetune: a classifier of another label count gets a new head of the task's size
        model, tokenizer = load_task_model(cfg.model, task, replace_head=True), load_tokenizer(cfg.model)
        ready_to_pad(model, tokenizer, cfg.model)
        check_seq_length(cfg.max_seq_length, tokenizer, model)
        return model, tokenizer, None, None
    note_other_task(teacher_name, task.name, "teacher")
    if cfg.student:
        note_other_task(cfg.student, task.name, "student")
    teacher, t_tok = load_task_model(teacher_name, task, new_head_ok=False), load_tokenizer(teacher_name)
    ready_to_pad(teacher, t_tok, teacher_name)  # (before a student copies the teacher's config)
    student, tokenizer = load_student(cfg, teacher, task), load_tokenizer(cfg.student or teacher_name)
    ready_to_pad(student, tokenizer, cfg.student or teacher_name, say=bool(cfg.student))
    if student.config.num_labels != teacher.config.num_labels:
        raise DynaKDError(
            f"the teacher predicts {outputs_said(teacher.config.num_labels)} but the student "
            f"{outputs_said(student.config.num_labels)}"
        )
    check_seq_length(cfg.max_seq_length, tokenizer, student)
    check_seq_length(cfg.max_seq_length, t_tok, teacher)
    sizes = [sum(p.numel() for p in m.parameters()) for m in (student, teacher)]
    if sizes[0] > sizes[1]:  # allowed, but rarely what distillation is for
        note(f"the student ({parameters_said(sizes[0])} parameters) is larger than the teacher "
             f"({parameters_said(sizes[1])})")
    return student, tokenizer, teacher, t_tok


def build_distiller(cfg: DistillConfig, student, teacher, task: TaskSpec, same_tok: bool) -> Distiller:
    ref = teacher if teacher is not None else student
    distiller = Distiller(
        cfg,
        student_layers=student.config.num_hidden_layers,
        teacher_layers=ref.config.num_hidden_layers,
        student_width=student.config.hidden_size,
        teacher_width=ref.config.hidden_size,
        regression=task.is_regression,
        same_tokenizer=same_tok,
        qa=task.is_qa,
    )
    widths = student.config.hidden_size, ref.config.hidden_size
    if distiller.projections is not None and widths[0] != widths[1]:  # (the width-free forms need none)
        term = "hidden_weight's term" if distiller.hidden_term else f"method {cfg.method}"
        note(f"the student's width ({widths[0]}) is not the teacher's ({widths[1]}): {term} compares their states "
             "through a learned linear map per student layer, trained with the student and not saved with it")
    return distiller


def _final_eval(trainer: DistillationTrainer, step: int) -> dict[str, float]:
    """The scores of the final model: those of the evaluation the Trainer ran at the last step (end of the last
    epoch), else a new evaluation (gathered over processes by the Trainer). With several eval sets (MNLI) the
    Trainer logs one entry per set, each named by it (``eval_validation_matched_runtime``): those of the last step,
    joined, where every set has one (they were evaluated anew: the last step's scores twice in the logs, and a second
    pass over MNLI's ~20k dev rows)."""
    if isinstance(trainer.eval_dataset, dict):
        joined = {}
        for h in trainer.state.log_history:
            if h.get("step") == step:
                joined.update({k: v for k, v in h.items() if k.startswith("eval_")})
        if all(f"eval_{name}_runtime" in joined for name in trainer.eval_dataset):
            return joined
        return trainer.evaluate()
    last = next((h for h in reversed(trainer.state.log_history) if "eval_runtime" in h), None)
    # (and QA's answers, which a resume that trained nothing after its checkpoint's evaluation has not got)
    if last is not None and last.get("step") == step \
            and (trainer.qa_eval is None or trainer.qa_predictions is not None):
        return {k: v for k, v in last.items() if k.startswith("eval_")}
    return trainer.evaluate()


def evaluate_model(model, tokenizer, task: TaskSpec, data, cfg: DistillConfig,
                   predictions: Path | None = None) -> dict[str, float]:
    """Scores of ``model`` on the task's eval splits, through a plain ``Trainer``; extractive QA's answers written to
    ``predictions`` where given (``write_predictions``)."""
    return _score(model, tokenizer, task, cfg, *_encode_eval(cfg, task, data, tokenizer), predictions)


def score_teacher(teacher, tokenizer, task: TaskSpec, data, cfg: DistillConfig, name: str, device: torch.device,
                  files: dict[str, Any] | None) -> tuple[dict[str, float], Path | None]:
    """The teacher's scores (``evaluate_model``), read from an earlier run's record where its files
    (``teacher_scores.model_files``, as they were when it loaded; None: several processes, or files it cannot tell
    apart), config, tokenizer, the encoded rows and the settings are the same (``teacher_scores``), and the record
    read (None: scored now, and recorded)."""
    eval_data, qa_eval = _encode_eval(cfg, task, data, tokenizer)
    settings = None if files is None else teacher_scores.score_settings(
        files, teacher, tokenizer, task, teacher_scores.rows_fingerprint(eval_data, qa_eval),
        max_length=cfg.max_seq_length, padding=pad_multiple(cfg, device), side=padding_side(teacher, qa=task.is_qa),
        batch_size=cfg.eval_batch_size, precision=cfg.precision(), device=device)
    if settings is None:  # (several processes, or files it cannot tell apart: scored as always)
        return _score(teacher, tokenizer, task, cfg, eval_data, qa_eval), None
    if (found := teacher_scores.read(settings)) is not None:
        scores, path = found
        tell(f"teacher's scores read from an earlier run's evaluation of the same teacher files, rows and settings "
             f"({home_relative(path)}; delete it to score the teacher again)")
        return scores, path
    scores = _score(teacher, tokenizer, task, cfg, eval_data, qa_eval)
    teacher_scores.write(settings, scores, name)
    return scores, None


def _encode_eval(cfg: DistillConfig, task: TaskSpec, data, tokenizer) -> tuple[dict[str, Any], QAEval | None]:
    """The task's evaluation splits of ``data``, encoded for ``tokenizer`` (``{split: rows}``), and QA's windows."""
    eval_data, qa_eval = encode(cfg, task, type(data)({s: data[s] for s in task.eval_splits}), tokenizer)
    return {s: eval_data[s] for s in task.eval_splits}, qa_eval


def _score(model, tokenizer, task: TaskSpec, cfg: DistillConfig, eval_data, qa_eval: QAEval | None,
           predictions: Path | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="dynakd-eval-") as tmp:
        trainer = _eval_trainer(model, tokenizer, task, cfg, tmp, qa_eval)
        scores = _strip(trainer.evaluate(_eval_sets(task, eval_data)))
    if predictions is not None:
        write_predictions(predictions, trainer)
    return scores


def write_predictions(path: Path, trainer) -> None:
    """Extractive QA's answers of the trainer's last evaluation, ``{question id: answer}`` as the official SQuAD
    script reads them (and ``run_qa.py`` writes them, ``eval_predictions.json``): to look at the answers, or score
    them with another tool; nothing for other tasks (their predictions are the labels of the rows). Process 0."""
    if trainer.qa_predictions is not None and is_first_process():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, jsonfile.dumps(trainer.qa_predictions, indent=1, ensure_ascii=False))


def _eval_trainer(model, tokenizer, task: TaskSpec, cfg: DistillConfig, tmp: str, qa_eval: QAEval | None = None):
    try:
        args = _eval_args(cfg, tmp)
    except (ValueError, ImportError) as e:  # e.g. bf16 on a GPU without it
        raise DynaKDError(f"invalid evaluation settings: {first_line(e)}") from None
    trainer = EvalTrainer(
        model=model,
        args=args,
        data_collator=DistillationCollator(tokenizer, None, task.is_regression,
                                           pad_to_multiple_of=pad_multiple(cfg, args.device),
                                           max_length=cfg.max_seq_length,
                                           sides=(padding_side(model, qa=task.is_qa),) * 2),
        compute_metrics=None if task.is_qa else _metric_fn(task),
        qa_eval=qa_eval,
    )
    # without progress bars the Trainer prints each evaluation's raw dict: the teacher's, unlabelled, read as the
    # student's just above the student's own scores (which the command prints, named)
    trainer.remove_callback(PrinterCallback)
    trainer.eval_longest_first = True  # (its metrics do not follow the order of rows)
    return trainer


def _eval_args(cfg: DistillConfig, tmp: str) -> TrainingArguments:
    return TrainingArguments(
        output_dir=tmp,
        # the run's precision: a distilled student is scored under the Trainer's autocast (accelerate wraps its
        # forward), so its teacher is scored under the same; `dynakd evaluate` scores in float32 unless told
        fp16=cfg.fp16,
        bf16=cfg.bf16,
        per_device_eval_batch_size=cfg.eval_batch_size,
        report_to=[],
        disable_tqdm=not cfg.progress,
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_pin_memory=torch.cuda.is_available(),
        dataloader_num_workers=cfg.dataloader_num_workers,
        use_cpu=_cpu_only(),
        average_tokens_across_devices=False,  # else the Trainer multiplies a per-example mean loss by the processes
    )


def evaluate(cfg: DistillConfig | dict) -> RunResult:
    """Score the model folder ``cfg.model`` on ``cfg.task`` and write ``metrics.json`` next to it. ``cfg``: a
    DistillConfig or a dict of config keys; a dict takes the task, data and input length of a DynaKD run folder where
    it names none, as the command line does (``lending.evaluation_defaults``)."""
    cfg = _lending(cfg, "evaluate")
    if not cfg.model:
        raise DynaKDError("evaluate needs --model (a model folder)")
    with run_scope(cfg.progress, cfg.trust_remote_code):
        return _evaluate(cfg)


def _evaluate(cfg: DistillConfig) -> RunResult:
    check_precision(cfg)
    check_model_folder(cfg.model)  # a mistyped path is named as such, not as the data it would have evaluated on
    check_model_loads(cfg.model)  # (a mistyped folder is named as such first: offline, run/model for runs/model)
    if not cfg.output and not Path(os.path.expanduser(cfg.model)).is_dir():  # a hub id or an alias: ./org/name would
        # become a folder without a model, which later commands naming the model would take for a broken one
        raise DynaKDError(f"{cfg.model} is not a local folder to write metrics.json into: give --output DIR")
    out = Path(cfg.output or cfg.model)
    check_writable(out)  # before the data and the model load
    holds_run = (out / CONFIG_NAME).is_file()
    run_folder = not cfg.output or holds_run  # the score goes beside the run's record
    if holds_run and not (out / "metrics.json").is_file():
        raise DynaKDError(f"{out} holds an unfinished run: a metrics.json written there would mark it finished (and "
                          "stop it resuming); give another --output")
    if holds_run and cfg.output and not same_file(cfg.output, cfg.model):
        raise DynaKDError(f"--output {out} holds the run of another model: the score of {cfg.model} would be filed "
                          "in that run's record; give the model's own folder or a folder of its own")
    if run_folder:
        earlier_metrics(out)
    elif (out / "metrics.json").is_file():  # an earlier score, of this model or another
        note(f"replacing the earlier score in {out / 'metrics.json'}")
    task, data = load_data(cfg, train=False, labels_of=cfg.model)
    note_other_task(cfg.model, task.name, "model")
    model = load_task_model(cfg.model, task, new_head_ok=False)
    tokenizer = load_tokenizer(cfg.model)
    ready_to_pad(model, tokenizer, cfg.model)
    check_seq_length(cfg.max_seq_length, tokenizer, model)
    if not task.is_qa:
        check_labels(type(data)({s: data[s] for s in task.eval_splits}), task.num_labels, task.is_regression)
    # (QA's answers beside the scores: into a run's folder under a name of their own, as its record keeps the run's)
    answers = out / (EVALUATE_PREDICTIONS if run_folder else PREDICTIONS)
    metrics = {"eval": evaluate_model(model, tokenizer, task, data, dataclasses.replace(cfg, output=str(out)),
                                      predictions=answers), **eval_split_rows(data)}
    metrics["model"] = describe_model(model, Path(cfg.model))
    cfg = scored_as(cfg, task, data)
    if is_first_process():  # every process holds the gathered scores; one writes them
        out.mkdir(parents=True, exist_ok=True)
        write_metrics(out, "evaluate", cfg, task, metrics, merge="evaluate" if run_folder else None)
        if holds_run:  # (the run's card shows its own scores; these beside them)
            add_evaluation(out, cfg, task, metrics["eval"], metrics.get("eval_split_rows"))
    return RunResult(out, metrics_record("evaluate", cfg, task, metrics))  # the record written (under `evaluate`)
