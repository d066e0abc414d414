"""``dynakd bench``: per-step training time and peak memory of each method, with and without the teacher cache.

Every configuration trains the same student (built from the same teacher) on the same real batches through the real
``DistillationTrainer`` (forward, backward, optimizer step, collation), so the numbers are what a run pays per step.
Repeats interleave the configurations, each repeat in an order of its own (``repeat_orders``). Step times after
``warmup`` are summarised as median and interquartile range; ratios are to ``task`` (the student alone, the floor of
distillation), pooled and per repeat (each repeat's median over ``task``'s in the same repeat: their range shows the
machine's spread). A step is also split into phases (teacher pass or cache read, student forward, feature terms,
aligner, and the rest: backward, optimiser, data) by timing those calls on a short run of its own (timers make a GPU's
host wait, so the timed steps carry none), except under ``--torch-compile``, where a timer inside compiled code would
split its graph. Peak memory is CUDA's allocator peak on a GPU; elsewhere the peak of live tensor bytes
(``TensorMemory``), counted on a few extra steps of each configuration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import platform
import shlex
import tempfile
import time
import weakref
from collections import Counter, defaultdict
from contextlib import nullcontext
from pathlib import Path
from statistics import median, quantiles
from typing import Any

import torch
import transformers
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from .. import atomic, jsonfile
from ..cache import cache_blocker, prepare_teacher_cache
from ..config import DistillConfig, build_config, existing_part, layer_term, repository_hint
from ..data import synthetic_serves
from ..data.load import encode, load_data
from ..data.prepare import DistillationCollator, pad_multiple, padding_side
from ..data.tasks import get_task
from ..distributed import check_one_gpu_per_process
from ..errors import DynaKDError
from ..features import EXAMPLE_ID
from ..lending import note_other_task
from ..losses.grams import window_budget
from ..models import check_seq_length, load_task_model, load_tokenizer, ready_to_pad, remote_code
from ..notes import say
from ..provenance import source_commit
from ..rundir import lent_record
from ..runner import build_distiller, set_dataset_reference, training_args
from ..students import build_student
from ..trainer import DistillationTrainer
from .plots import config_label, find_row, held_to_kd


class StepTimer(TrainerCallback):
    """Wall time of each step, from the end of the one before (the start of training for the first): what a run pays
    per step, the fetch and collation of its batch included (the Trainer fetches a batch before ``on_step_begin``)."""

    def __init__(self):
        self.times: list[float] = []
        self._last = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        _sync()
        self._last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        _sync()
        now = time.perf_counter()
        self.times.append(now - self._last)
        self._last = now


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class PhaseTimer(TrainerCallback):
    """Wall time per step spent inside chosen calls (wrapped in place); counted only after ``warmup`` steps.

    Wrapping by hand rather than ``torch.profiler``: the profiler's op-level view needs labelled regions in the
    training code and adds overhead to every op; four timed calls per step are enough to say where time goes.
    """

    def __init__(self, warmup: int):
        self.warmup, self.on, self.steps = warmup, False, 0
        self.totals: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.ahead: set[str] = set()

    def wrap(self, obj, attr: str, phase: str, ahead: bool = False) -> None:
        """Time ``obj.attr`` as ``phase``; ``ahead``: a call made once a step, but for the next step (the collator's:
        the loader collates one batch ahead), whose mean is then per call, not per timed step."""
        fn = getattr(obj, attr)
        if ahead:
            self.ahead.add(phase)

        def timed(*args, **kwargs):
            if not self.on:
                return fn(*args, **kwargs)
            _sync()
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            _sync()
            self.totals[phase] += time.perf_counter() - start
            self.calls[phase] += 1
            return out

        setattr(obj, attr, timed)

    def on_step_begin(self, args, state, control, **kwargs):
        self.on = state.global_step >= self.warmup
        self.steps += self.on

    def per_step_ms(self, step_ms: float) -> dict[str, float]:
        if not self.totals:  # nothing wrapped (a compiled step is timed whole): no remainder to name
            return {}
        phases = {k: 1000 * v / max(1, self.calls[k] if k in self.ahead else self.steps)
                  for k, v in self.totals.items()}
        inner = phases.get("aligner", 0.0)
        if "feature_terms" in phases:
            phases["feature_terms"] -= inner  # the aligner runs inside the feature terms
        phases["backward_optimizer_data"] = step_ms - sum(phases.values())
        return {k: round(v, 2) for k, v in phases.items()}


class TensorMemory(TorchDispatchMode):
    """Peak bytes of the tensors alive at once among those created inside the block, on any device; and the number of
    operators dispatched (``ops``).

    CUDA's allocator reports this peak itself; a CPU process has no such counter (its resident set keeps freed pages
    in the allocator's pools, so it cannot compare methods), hence this count, written here because torch's own
    ``MemTracker`` refuses a module called twice per step (the teacher, the student's extra forwards). Every operator
    output's storage is counted once, while it lives (a weak reference drops it); those of tensors that were there
    before (``existing``) are not. The mode slows every operator, so the bench runs it on a few extra steps, never on
    the timed ones.

    Operators per step are the hardware-free view of a step's overhead: where a step is short (a small model on a
    GPU) its time is mostly one launch per operator, so on one H200 the ratios of operators per step matched the ratios
    of step times (benchmarks/speed/RESULTS.md).
    """

    def __init__(self, *existing: torch.nn.Module):
        """``existing``: modules whose parameters and buffers were there before the block, and which an operator may
        return (a ``Linear`` views its weight; an optimizer updates parameters in place): not counted, as CUDA's
        peak is taken above the memory allocated before it."""
        super().__init__()
        self.live = self.peak = self.ops = 0
        self._storages = WeakIdKeyDictionary()
        for module in existing:
            for t in (*module.parameters(), *module.buffers()):
                self._storages[t.untyped_storage()] = None

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            storage = t.untyped_storage() if isinstance(t, torch.Tensor) else None
            if storage is not None and storage not in self._storages:
                nbytes = storage.nbytes()
                self._storages[storage] = weakref.ref(storage, lambda _, n=nbytes: self._free(n))
                self.live += nbytes
                self.peak = max(self.peak, self.live)
        return out

    @property
    def mib(self) -> float:
        return self.peak / 2**20


class OpsPerStep(TrainerCallback):
    """Operators each step dispatched, read from a ``TensorMemory`` around the training."""

    def __init__(self, meter: TensorMemory):
        self.meter, self._start = meter, 0
        self.per_step: int | None = None  # the last step's count (the first steps also create the optimiser's state)

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = self.meter.ops

    def on_step_end(self, args, state, control, **kwargs):
        self.per_step = self.meter.ops - self._start


class CudaPeak:
    """CUDA's allocator peak above the level at the start of the block (MiB)."""

    def __enter__(self):
        gc.collect()  # what the configuration before left for the collector is not this one's baseline
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        self.base = torch.cuda.memory_allocated()
        return self

    def __exit__(self, *exc):
        self.mib = (torch.cuda.max_memory_allocated() - self.base) / 2**20


def bench_one(cfg: DistillConfig, teacher, tokenizer, data, task, cache_dir: Path | None, tmp: Path,
              warmup: int = 0, count_tensors: bool = False, phases_on: bool = False) -> dict:
    """Train ``cfg.max_steps`` steps of one configuration, timing each; the peak memory comes from CUDA's allocator,
    or with ``count_tensors`` from ``TensorMemory``, which also counts operators per step (slow: for short runs apart
    from the timed ones). ``phases_on`` times the calls of each phase too (each timer waits for the GPU: for short
    runs apart from the timed ones as well)."""
    gc.collect()  # the configuration before left its trainer and student in reference cycles: not in this one's steps
    cfg = dataclasses.replace(cfg, teacher_cache=str(cache_dir) if cache_dir else "off")
    cache_on = cache_dir is not None
    student = build_student(teacher, cfg.student_layers)
    distiller = build_distiller(cfg, student, teacher, task, same_tok=True)
    train = data["train"]
    args = training_args(cfg, tmp / "run")
    # Batches pad as a run's do (pad_multiple): compiled runs to a multiple of 8, so CUDA graphs (reduce-overhead),
    # recorded once per distinct shape, are at most max_seq_length / 8 of them.
    collator = DistillationCollator(tokenizer, None, task.is_regression,
                                    pad_to_multiple_of=pad_multiple(cfg, args.device), max_length=cfg.max_seq_length,
                                    sides=(padding_side(teacher, qa=task.is_qa),) * 2)
    # Collation in the process that times it (the bench records each batch's shape and times the cache read there);
    # no checkpoint writes inside the timed steps.
    args = dataclasses.replace(args, report_to=[], disable_tqdm=True, logging_steps=10**9,
                               logging_first_step=False, eval_strategy="no",
                               save_strategy="no", dataloader_num_workers=0)
    builds = cache_on and not cache_dir.exists()  # the configurations share one cache: the first builds it
    start = time.perf_counter()
    cache = prepare_teacher_cache(cfg, teacher, train, collator, args.device, say_reuse=False) if cache_on else None
    teacher_pass_s = round(time.perf_counter() - start, 2) if builds else None
    set_dataset_reference(cfg, distiller, teacher, cache, train, collator, args.device)  # as a run does
    if cache is not None:
        train = train.add_column(EXAMPLE_ID, list(range(len(train))))
        cache.vouch(train)  # (the rows it was checked against or built from, numbered in that order)
    timer, phases = StepTimer(), PhaseTimer(warmup)
    # [batch, length] of every batch, as the collator hands it over (outside any compiled code), in order: the loader
    # may collate one ahead of the step, so the timed steps' batches are picked by position below. Configurations
    # must see the same batches.
    collate, collated = collator, []

    def collator(features):
        batch = collate(features)
        collated.append(list(batch["input_ids"].shape))
        return batch

    if phases_on and not cfg.torch_compile:
        # A compiled step is timed whole: timing calls inside a compiled region split its graph (dynamo cannot trace
        # time.perf_counter or a CUDA sync) and, under CUDA graphs, force the syncs the graphs exist to avoid.
        phases.wrap(student, "forward", "student_forward")
        if cache is not None:
            phases.wrap(cache, "rows", "teacher_cache_read", ahead=True)  # in the collator, as training reads it
        elif cfg.method != "task":
            phases.wrap(teacher, "forward", "teacher_forward")
        if distiller.feature:
            phases.wrap(distiller, "feature_terms", "feature_terms")
            phases.wrap(distiller.aligner, "forward", "aligner")
    meter = TensorMemory(student, teacher, distiller) if count_tensors \
        else CudaPeak() if torch.cuda.is_available() else None
    ops = OpsPerStep(meter) if count_tensors else None
    callbacks = [timer, phases] + ([ops] if ops is not None else [])
    trainer = DistillationTrainer(model=student, args=args, train_dataset=train, data_collator=collator,
                                  teacher=teacher, distiller=distiller, teacher_cache=cache, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # keep the bench's own table readable
    with meter or nullcontext():
        trainer.train()
    for module, attr in ((student, "forward"), (teacher, "forward"), (distiller, "feature_terms")):
        module.__dict__.pop(attr, None)  # unwrap: the teacher is shared by every configuration
    if distiller.aligner is not None:
        distiller.aligner.__dict__.pop("forward", None)
    timed = after_warmup(timer.times, warmup)
    shapes = collated[len(timer.times) - len(timed):len(timer.times)]
    step_ms = 1000 * sum(timed) / len(timed)  # phases are means per step, so the remainder is taken from the mean
    peak = round(meter.mib, 1) if meter is not None else None
    return {"times": timer.times, "peak_mib": peak, "cache": cache is not None,
            "phases_ms": phases.per_step_ms(step_ms), "batch_shapes": shapes, "teacher_pass_s": teacher_pass_s,
            "ops_per_step": ops.per_step if ops is not None else None}


def after_warmup(times: list[float], warmup: int) -> list[float]:
    """The timed steps (all of them when a run was shorter than its warm-up)."""
    return times[warmup:] or times


def summarise(times: list[float], warmup: int) -> dict[str, float]:
    """Median and quartiles of the timed steps, and their mean: batches of very different lengths (QA windows) make
    the median the common batch's time while a run pays the mean (benchmarks/speed/RESULTS.md, 2026-12-06)."""
    t = after_warmup(times, warmup)
    # (inclusive: within the steps timed; the default extrapolates past them, below 0 ms for two steps)
    q = quantiles(t, n=4, method="inclusive") if len(t) > 1 else [t[0], t[0], t[0]]
    return {"median_ms": round(1000 * median(t), 2), "q1_ms": round(1000 * q[0], 2), "q3_ms": round(1000 * q[2], 2),
            "mean_ms": round(1000 * sum(t) / len(t), 2), "steps_timed": len(t)}


def _teacher_data_flags(base: DistillConfig) -> str:
    """The flags that give the bench the data a DynaKD teacher was fine-tuned on (its task where not the bench's,
    its folder or file, its columns), or empty for another teacher or one whose data is not recorded."""
    saved = lent_record(os.path.expanduser(str(base.teacher)))
    own = {k: saved[k] for k in ("task", "data_dir", "train_file", "dataset", "dataset_config", "train_split",
                                 "text_columns", "label_column") if saved.get(k)}
    if not own.keys() & {"data_dir", "train_file", "dataset"}:
        return ""
    try:
        task = get_task(str(own.get("task", base.task)))
    except DynaKDError:  # (a task name no longer known: the folder alone)
        task = get_task(base.task)
    flags = [f"--task {task.name}"] if task.name != base.task else []
    flags += [f"--{k.replace('_', '-')} {shlex.quote(str(own[k]))}"
              for k in ("data_dir", "train_file", "dataset", "dataset_config") if k in own]
    if own.get("dataset") and own.get("train_split", DistillConfig.train_split) != DistillConfig.train_split:
        flags.append(f"--train-split {shlex.quote(str(own['train_split']))}")
    if task.is_user_data:  # (their columns; a GLUE or SQuAD run records the default label column)
        flags += [f"--text-columns {shlex.quote(','.join(own['text_columns']))}"] if own.get("text_columns") else []
        label = own.get("label_column", DistillConfig.label_column)
        flags += [f"--label-column {shlex.quote(label)}"] if label != DistillConfig.label_column else []
    return " ".join(flags)


def run_bench(base: DistillConfig, *, methods: list[str], aligners: list[str], steps: int, warmup: int,
              output: Path | None, repeats: int = 3, epoch: bool = False) -> dict[str, Any]:
    """Time every (method, aligner, cache) configuration; print a table; write JSON if ``output``. With ``epoch``,
    each configuration trains one whole epoch over the training rows instead (``steps`` and ``warmup`` unused), timed
    from its first step to its last: what a run pays, its first slow steps included; the teacher pass that fills the
    cache is timed apart (``teacher_pass_s``), since one cache serves every run on those rows."""
    if epoch:
        steps, warmup = 0, 0
    methods, aligners = list(dict.fromkeys(methods)), list(dict.fromkeys(aligners))  # a name given twice, timed once
    base = _checked(base, methods, aligners, steps, warmup, repeats, epoch, output)
    task, data = load_data(base)
    with remote_code(base.trust_remote_code):
        teacher = load_task_model(base.teacher, task, note_head=False)  # a fresh head is fine for timing
        tokenizer = load_tokenizer(base.teacher)
    ready_to_pad(teacher, tokenizer, base.teacher)
    try:  # (before the model fails deep inside)
        check_seq_length(base.max_seq_length, tokenizer, teacher)
    except DynaKDError as e:
        raise DynaKDError(f"{e}: give a --max-seq-length it takes") from None
    data, _ = encode(base, task, data, tokenizer)  # sentences, or extractive QA's windows with their answer spans
    # why a method has no cached row (its losses need the live teacher), if it has none
    no_cache = {m: cache_blocker(build_config(dataclasses.asdict(base) | {"method": m}))
                for m in methods if m != "task"}
    orders = repeat_orders(list(configurations(methods, aligners)), repeats)
    setup = setup_info(base, steps, warmup) | {"repeats": repeats, "epoch": epoch, "methods": methods,
                                               "aligners": aligners, "orders": _orders_run(orders, no_cache)}
    if not any(m != "task" and not no_cache[m] for m in methods):  # no cached row (QA, token-level methods)
        setup["teacher_cache_dtype"] = None

    def save_so_far(rows: list[dict]) -> None:  # a bench cut short (a time limit) leaves what it timed, marked partial
        if output:
            _write(output, {"rows": rows, "setup": setup, "partial": True, "max_rss_mib": max_rss_mib()})

    with tempfile.TemporaryDirectory(prefix="dynakd-bench-") as tmp:
        rows = _bench_all(base, teacher, tokenizer, data, task, methods[0], orders, steps, warmup, Path(tmp), epoch,
                          save_so_far)
    teacher_pass = next((r["teacher_pass_s"] for r in rows if r.get("teacher_pass_s") is not None), None)
    _add_ratios(rows, epoch, teacher_pass)
    _print_summary(rows, base, steps, repeats, epoch, teacher_pass)
    result = {"rows": rows, "setup": setup, "teacher_pass_s": teacher_pass,
              "no_cached_row": {m: why for m, why in no_cache.items() if why}, "max_rss_mib": max_rss_mib()}
    if output:
        _write(output, result)
        try:
            print(f"wrote {output} and its chart {plot_bench_file(output, result)}", flush=True)
        except DynaKDError as e:  # the timings are written: the chart alone is missing
            print(f"wrote {output}; its chart was not drawn ({e}): `dynakd report {output}` draws it", flush=True)
    return result


def _checked(base: DistillConfig, methods: list[str], aligners: list[str], steps: int, warmup: int, repeats: int,
             epoch: bool, output: Path | None) -> DistillConfig:
    """Refuse what the bench cannot time, before minutes of timing; return ``base`` with the data it will read (the
    synthetic corpus where none is given and it serves; the training file for the evaluation file it asks)."""
    check_one_gpu_per_process()
    if (not epoch and steps < 1) or repeats < 1 or warmup < 0:
        raise DynaKDError(f"bench needs --steps >= 1, --repeats >= 1, --warmup >= 0 (got {steps}, {repeats}, {warmup})")
    for method, align, _ in configurations(methods, aligners):  # every name, before minutes of timing
        build_config(dataclasses.asdict(base) | {"method": method, "align": _aligner(base, align)})
    for align in aligners:  # (also where no method reads one: a misspelt name went through without a word)
        build_config(dataclasses.asdict(base) | {"method": "full", "align": _aligner(base, align)})
    if output is not None:
        check_output_file(output)
    if base.teacher_cache not in ("auto", "off"):
        say(f"the bench builds a teacher cache of its own for the rows it times; teacher_cache {base.teacher_cache} "
            "is not read")
    if base.cuda_graphs and not torch.cuda.is_available():
        say("--cuda-graphs needs a CUDA device: the dynamics run eagerly here")
    if get_task(base.task).is_qa and not base.train_file:  # (--data-dir holds GLUE's folders, not SQuAD's file)
        raise DynaKDError(f"bench --task {base.task} needs --train-file FILE (a SQuAD v1.1 json): it times steps on "
                          "that file's windows")
    if not (base.data_dir or base.train_file or base.synthetic or base.dataset):
        if not synthetic_serves(get_task(base.task)):
            raise DynaKDError(f"bench on task {base.task} needs its data: --data-dir or --train-file (the synthetic "
                              "corpus stands in for single-sentence binary tasks only)")
        # (a DynaKD teacher's data is named, not lent: the bench times its own subset and length, whatever the
        # teacher's, so that its rows compare with other benches')
        own = _teacher_data_flags(base)
        where = (f"give {own} for the batches the teacher {base.teacher} was fine-tuned on" if own
                 else "give --data-dir for real SST-2 batches")
        print(f"bench: no --data-dir or --train-file: timing on the synthetic corpus (sentences of its own lengths; "
              f"{where})", flush=True)
        base = dataclasses.replace(base, synthetic=True)
    note_other_task(os.path.expanduser(str(base.teacher)), get_task(base.task).name, "teacher")
    if base.train_file and not base.validation_file:  # bench evaluates nothing: the training file stands in
        base = dataclasses.replace(base, validation_file=base.train_file)  # for the evaluation file load_data asks
    if base.dataset:  # (and the training split for the evaluation split, which a dataset may lack)
        base = dataclasses.replace(base, eval_split=base.train_split)
    return base


def _add_ratios(rows: list[dict], epoch: bool, teacher_pass: float | None) -> None:
    """Each row's ratios to ``task`` (pooled, per repeat, by the mean step, in operators) and to ``kd``."""
    floor = find_row(rows, "task", cache=False)
    measure = "epoch_s" if epoch else "median_ms"  # an epoch's wall time, or the median step
    per_repeat = "repeat_epochs_s" if epoch else "repeat_medians_ms"
    for r in rows:
        r["ratio_to_task"], r["repeat_ratios_to_task"] = _ratios(r, floor, measure, per_repeat)
        if not epoch:
            r["mean_ratio_to_task"] = round(r["mean_ms"] / floor["mean_ms"], 3) if floor else None
        if epoch and r["cache"] and teacher_pass is not None:  # a single run pays for its cache
            r["epoch_with_teacher_pass_s"] = round(r["epoch_s"] + teacher_pass, 2)
        counted = floor and floor["ops_per_step"] and r["ops_per_step"]
        r["ops_ratio_to_task"] = round(r["ops_per_step"] / floor["ops_per_step"], 3) if counted else None
        # ratios compare like with like only when every configuration trained on the same batches in the same order
        r["same_batches_as_task"] = r["batch_shapes"] == floor["batch_shapes"] if floor else None
    _ratios_to_kd(rows, measure, per_repeat)


def _print_summary(rows: list[dict], base: DistillConfig, steps: int, repeats: int, epoch: bool,
                   teacher_pass: float | None) -> None:
    """The table, the targets met or missed, and what to keep in mind reading them."""
    floor = find_row(rows, "task", cache=False)
    print(f"all {repeats} repeat(s) pooled" + (", ratios to the student alone (task):" if floor else ":"),
          flush=True)
    for r in rows:
        print("  " + format_row(r, unsplit(base, epoch)), flush=True)
    for line in target_lines(rows):
        print(line, flush=True)
    if pooled_outside_repeats(rows):
        say(POOLED_NOTE)
    if any(r["phases_ms"] for r in rows):
        print(f"after |: the mean ms per step of each part, from a {PHASE_STEPS}-step run of its own whose timers make "
              "the host wait for the device: they need not add up to the step above", flush=True)
    elif epoch or base.torch_compile:
        print("after |: no phases: " + ("--epoch times whole epochs, without the short runs that split a step"
                                        if epoch else "a timer inside compiled code would split its graph (and wait "
                                        "for the device), so compiled steps are timed whole"), flush=True)
    widths = [shape[-1] for r in rows for shape in r["batch_shapes"]]
    if not epoch and widths and max(widths) > 1.5 * min(widths):
        say(f"the timed batches are {min(widths)} to {max(widths)} tokens wide: a median step is a common batch's, "
            "while a run pays the mean (mean_ms, mean_ratio_to_task in the JSON; --epoch times whole epochs)")
    if not epoch and steps * repeats < 20:
        say(f"{steps * repeats} timed steps per configuration; medians of so few steps move with the machine's load "
            "(the defaults time 30 steps x 3 repeats)")
    if teacher_pass is not None:
        print(f"the teacher pass that filled the cache: {teacher_pass:.1f} s (one cache serves every run on these "
              "rows)", flush=True)


def plot_bench_file(path: Path, result: dict[str, Any] | None = None) -> Path:
    """Draw a bench JSON (``result``, else read from ``path``) as the chart beside it, ``.png`` for its suffix (added
    to a name that ends in ``.png`` already, which is the JSON's); the chart's path."""
    from . import plots  # (looked up when called: a test stands a failing chart in for it)

    if result is None:
        try:
            result = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:  # (ValueError: not JSON, or not UTF-8)
            hint = repository_hint(path) if isinstance(e, FileNotFoundError) else ""
            raise DynaKDError(f"cannot read the bench results {path}: {e}{hint}") from None
    rows = result.get("rows") if isinstance(result, dict) else None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise DynaKDError(f"{path} holds no bench rows (a JSON file `dynakd bench --output` wrote)")
    path = Path(path)
    chart = path.with_suffix(".png") if path.suffix.lower() != ".png" else path.with_name(path.name + ".png")
    try:
        plots.plot_bench(result, chart, TARGETS)
    except (KeyError, TypeError, AttributeError, ValueError) as e:  # a row without a field, or a null in it
        raise DynaKDError(f"{path} is not a bench JSON this version can draw ({type(e).__name__}: {e})") from None
    except OSError as e:
        raise DynaKDError(f"cannot write the chart {chart}: {e.strerror or e}") from None
    return chart


def allocator_env() -> dict[str, str]:
    """The host allocator's settings in the environment, which move a CPU's long steps by ~1.4x (docs/speed.md,
    "A CPU's memory allocator"): glibc's ``MALLOC_*``, PyTorch's ``THP_MEM_ALLOC_ENABLE``, a preloaded allocator."""
    return {k: v for k, v in os.environ.items()
            if k.startswith("MALLOC_") or k in ("THP_MEM_ALLOC_ENABLE", "LD_PRELOAD")}


def max_rss_mib() -> float | None:
    """The process's peak resident set so far, MiB (None where the platform does not say): the host's whole cost,
    its allocator's pools included, beside the rows' peaks of live tensors (an allocator that keeps freed memory for
    reuse trades one for time, benchmarks/speed/RESULTS.md)."""
    try:
        import resource  # (Unix only)
    except ImportError:
        return None
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(kib / (2**20 if platform.system() == "Darwin" else 2**10), 1)


def _write(path: Path, result: dict[str, Any]) -> None:
    """Write the JSON whole or not at all (a time limit may stop the bench while it writes: the rows written before
    must survive)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, jsonfile.dumps(result, indent=1))


MEMORY_STEPS = 3  # the first batches, the optimiser's state created on the way: the same for every configuration
PHASE_STEPS = 10  # timed steps of the run that splits a step into phases (after the warm-up)


def _bench_all(base, teacher, tokenizer, data, task, first_method: str, orders: list[list], steps, warmup, tmp: Path,
               epoch: bool = False, save_so_far=None) -> list:
    """Each repeat times every configuration once, in turn (each repeat in an order of its own, ``orders``:
    ``repeat_orders``), so a slow spell of the machine spreads over all of them instead of landing on one; the rows
    pool the timed steps of all repeats. The first repeat also runs the short phase and counting runs of each
    configuration (the phase run not for ``epoch``: a whole epoch is timed as one). ``first_method`` pays the
    process's first training; ``save_so_far`` gets the rows after each configuration."""
    length = {"epochs": 1, "max_steps": -1} if epoch else {"max_steps": steps + warmup}
    cache_dir = tmp / "cache"
    runs: dict[tuple, list[dict]] = defaultdict(list)
    rows: list[dict] = []
    # The CUDA context, cuBLAS workspaces and kernel choices, and a process's first training (lazy set-ups, the
    # allocator's first pages): paid here, not by the first row. Timed steps after a warm-up would not pay them, but
    # --epoch times every step, and task's first epoch paid them on a CPU
    if torch.cuda.is_available() or epoch:
        first = build_config(dataclasses.asdict(base) | {"method": first_method, "max_steps": 2})
        bench_one(first, teacher, tokenizer, data, task, None, tmp)
    for repeat, order in enumerate(orders):
        for method, align, cache_on in order:
            cfg = build_config(dataclasses.asdict(base) | {"method": method, "align": _aligner(base, align), **length})
            if cache_on and (why := cache_blocker(cfg)):
                if repeat == 0:
                    print(f"bench: no cached row for {method}: {why}", flush=True)
                continue
            cache = cache_dir if cache_on else None
            res = bench_one(cfg, teacher, tokenizer, data, task, cache, tmp, warmup)
            if repeat == 0 and not cfg.torch_compile and not epoch:
                # phases from a run of their own: the timed steps carry no timers, each of which would make the host
                # wait for the GPU's queue (on a CPU it waits for nothing)
                split = dataclasses.replace(cfg, max_steps=warmup + PHASE_STEPS)
                res["phases_ms"] = bench_one(split, teacher, tokenizer, data, task, cache, tmp, warmup,
                                             phases_on=True)["phases_ms"]
            # a short run for operators per step and, without an allocator peak (CPU), tensor bytes; not for the
            # operators of a compiled run: the dispatch mode turns torch.compile back to eager, so they would mislead;
            # nor under recorded dynamics (a graph's replay dispatches no operator, and none may be recorded under it)
            count_ops = not cfg.torch_compile and not distiller_records(cfg)
            if repeat == 0 and (count_ops or res["peak_mib"] is None):
                short = dataclasses.replace(cfg, max_steps=MEMORY_STEPS)
                counted = bench_one(short, teacher, tokenizer, data, task, cache, tmp, count_tensors=True)
                res["ops_per_step"] = counted["ops_per_step"] if count_ops else None
                if res["peak_mib"] is None:
                    res["peak_mib"] = counted["peak_mib"]
            runs[(method, align, cache_on)].append(res)
            row = _row(method, align, runs[(method, align, cache_on)], warmup, epoch)
            so_far = ", pooled so far" if repeat else ""  # (the row of every repeat yet: what the JSON will hold)
            print(f"[{repeat + 1}/{len(orders)}{so_far}] " + format_row(row, unsplit(base, epoch)), flush=True)
            rows = [_row(m, a, results, warmup, epoch) for (m, a, _), results in runs.items()]
            if save_so_far:
                save_so_far(rows)
    return rows


def _row(method: str, align: str, results: list[dict], warmup: int, epoch: bool = False) -> dict[str, Any]:
    timed = [t for r in results for t in after_warmup(r["times"], warmup)]
    phases = results[0]["phases_ms"]  # measured in the first repeat only
    shapes = [r["batch_shapes"] for r in results]
    return {"method": method, "align": align if layer_term(method) else "-",
            "cache": results[0]["cache"],
            "peak_mib": max(r["peak_mib"] for r in results if r["peak_mib"] is not None), **summarise(timed, 0),
            "ops_per_step": results[0]["ops_per_step"],
            "repeat_medians_ms": [round(1000 * median(after_warmup(r["times"], warmup)), 2) for r in results],
            # each repeat's timed steps, in the order of batch_shapes (the same batches each repeat where it says so)
            "step_ms": [[round(1000 * t, 2) for t in after_warmup(r["times"], warmup)] for r in results],
            "phases_ms": phases, "batch_shapes": shapes[0],
            "same_batches_each_repeat": all(x == shapes[0] for x in shapes),
            "teacher_pass_s": next((r["teacher_pass_s"] for r in results if r["teacher_pass_s"] is not None), None),
            **({"epoch_s": round(median(sum(r["times"]) for r in results), 2),
                "repeat_epochs_s": [round(sum(r["times"]), 2) for r in results]} if epoch else {})}


def _ratios(r: dict, base: dict | None, measure: str, per_repeat: str) -> tuple[float | None, list[float] | None]:
    """Row ``r`` against row ``base`` (None: no such row): the pooled ratio, and each repeat's against ``base``'s in
    the same repeat, minutes apart at most (with several repeats): the spread of those is what the machine's slow and
    fast spells do to a ratio (up to ~30% on a 2-core CPU: speed/RESULTS.md)."""
    if base is None:
        return None, None
    paired = len(r[per_repeat]) == len(base[per_repeat]) > 1
    return (round(r[measure] / base[measure], 3),
            [round(a / b, 3) for a, b in zip(r[per_repeat], base[per_repeat])] if paired else None)


def _ratios_to_kd(rows: list[dict], measure: str, per_repeat: str) -> None:
    """Each live row of a layer term against live ``kd`` (two of the speed targets divide by it): the pooled
    ``ratio_to_kd``, ``repeat_ratios_to_kd`` (each repeat against ``kd``'s same repeat) and ``peak_ratio_to_kd``."""
    kd = find_row(rows, "kd", cache=False)
    for r in rows:
        pair = kd if held_to_kd(r) else None
        r["ratio_to_kd"], r["repeat_ratios_to_kd"] = _ratios(r, pair, measure, per_repeat)
        r["peak_ratio_to_kd"] = round(r["peak_mib"] / kd["peak_mib"], 3) if pair and kd["peak_mib"] else None


# The speed issue's targets (README, "Where the targets stand"): a layer term's live step over kd's, a cached step
# over the student's alone, a layer term's peak over kd's
TARGETS = {"ratio_to_kd": 1.05, "ratio_to_task": 1.10, "peak_ratio_to_kd": 1.10}


def target_lines(rows: list[dict]) -> list[str]:
    """What the table says of each target, by the pooled ratio (a median step, or an epoch), and the range of the
    paired ratios over repeats where there are several: a ratio near a target is inside this machine's spread."""
    def verdict(value: float, limit: float, spread: list[float] | None) -> str:  # (as the JSON rounds: 1.053)
        said = f"{value:.3f}x" + (f" pooled (repeats {min(spread):.3f}-{max(spread):.3f})" if spread else "")
        return f"{said} <= {limit:.2f}: {'met' if value <= limit else 'missed'}"

    lines = []
    for r in rows:
        name = config_label(r["method"], r["align"], r["cache"])
        if r.get("ratio_to_kd") is not None:
            lines.append(f"  {name}, time over kd's: "
                         + verdict(r["ratio_to_kd"], TARGETS["ratio_to_kd"], r.get("repeat_ratios_to_kd")))
        if r.get("peak_ratio_to_kd") is not None:
            lines.append(f"  {name}, peak over kd's: "
                         + verdict(r["peak_ratio_to_kd"], TARGETS["peak_ratio_to_kd"], None))
        if r["cache"] and r.get("ratio_to_task") is not None:
            lines.append(f"  {name}, time over task's: "
                         + verdict(r["ratio_to_task"], TARGETS["ratio_to_task"], r.get("repeat_ratios_to_task")))
    return ["the speed targets, by the pooled ratios:", *lines] if lines else []


def pooled_outside_repeats(rows: list[dict]) -> bool:
    """Whether a row's pooled ratio (of the medians of all repeats' steps together) lies outside the range of its
    repeats' own ratios, which reads as a contradiction where the two are printed side by side: a median of the
    pooled steps is no average of the repeats' medians, and a ratio of two of them need not lie between theirs (two
    repeats of ratio 1.1, steps of 10, 10 ms and 20, 40 ms against 11, 11 ms and 33, 33 ms: pooled 22 / 15 = 1.47)."""
    pairs = (("ratio_to_task", "repeat_ratios_to_task"), ("ratio_to_kd", "repeat_ratios_to_kd"))
    return any(r.get(pooled) is not None and r.get(spread) and not min(r[spread]) <= r[pooled] <= max(r[spread])
               for r in rows for pooled, spread in pairs)


POOLED_NOTE = ("a pooled ratio (the median of all repeats' steps over the other row's) may lie outside its "
               "repeats' range (each repeat's median over the other row's median in the same repeat): the two are "
               "medians of other sets of steps, and both are as measured")


def _aligner(base: DistillConfig, name: str) -> dict[str, Any]:
    """The aligner settings of a configuration: the base's (``--set align.eps=...``), with this aligner's name."""
    return dataclasses.asdict(base.align) | {"name": name}


def _orders_run(orders: list[list], no_cache: dict) -> list[list[str]]:
    """Each repeat's configurations as ``_bench_all`` runs them, named: without the cached rows of the methods that
    cannot have one (``no_cache``: why, by method)."""
    return [[config_label(m, a if layer_term(m) else "-", c) for m, a, c in order if not (c and no_cache.get(m))]
            for order in orders]


def repeat_orders(configs: list, repeats: int) -> list[list]:
    """The configurations in the order of each repeat. Each repeat starts further down the list, so that over the
    repeats every configuration runs early and late, and any effect of the position (suspected on a 2-core CPU, then
    found to be run-to-run noise there: benchmarks/speed/RESULTS.md) spreads over the rows instead of landing on the
    first one; from there, each next configuration is one that has followed the last one the fewest times so far (of
    those, the nearest down the list, so the first repeat keeps the list's order), so that, where the list allows it
    (four configurations or more), no configuration always follows the same one; and none ends a repeat that the
    next one starts with (three or more), which would run it twice in a row. With the rotation alone `kd` live always
    followed `task`, suspected of slowing it on this CPU (benchmarks/speed/RESULTS.md, 2026-12-06, session 43)."""
    n, followed, orders, last = len(configs), Counter(), [], None
    starts = [(repeat * -(-n // repeats)) % n for repeat in range(repeats)] if n else []
    for repeat in range(repeats):
        order = [starts[repeat]] if n else []
        following = starts[repeat + 1] if n and repeat + 1 < repeats else None
        while len(order) < n:
            left = [k for k in range(n) if k not in order]
            if len(left) == 2 and following in left:  # (not last: the next repeat starts with it)
                left = [following]
            order.append(min(left, key=lambda k, prev=order[-1]: (followed[prev, k], (k - prev) % n)))
        followed.update(zip([last, *order], order))  # (a repeat's first follows the last one's last)
        last = order[-1] if order else None
        orders.append([configs[k] for k in order])
    return orders


def configurations(methods: list[str], aligners: list[str]):
    for method in methods:
        for align in aligners if layer_term(method) else aligners[:1]:
            for cache_on in (False, True) if method != "task" else (False,):
                yield method, align, cache_on


def unsplit(base: DistillConfig, epoch: bool) -> str:
    """What a row without phases shows after ``|``: why the bench did not split its step (said at length below the
    table), else ``-``."""
    return "not split (--epoch)" if epoch else "not split (compiled)" if base.torch_compile else "-"


def format_row(r: dict[str, Any], unsplit: str = "-") -> str:
    """One row of the table; ``unsplit``: what stands after ``|`` where the row has no phases (why none)."""
    cache = "cache" if r["cache"] else "live"
    phases = " ".join(f"{k}={v:.1f}" for k, v in r.get("phases_ms", {}).items()) or unsplit
    ops = r.get("ops_per_step") or "-"
    ratio = f"  {r['ratio_to_task']:.2f}x task" if r.get("ratio_to_task") is not None else ""  # once all ran
    if r.get("repeat_ratios_to_task") and r["method"] != "task":
        ratio += f" pooled (repeats {min(r['repeat_ratios_to_task']):.2f}-{max(r['repeat_ratios_to_task']):.2f})"
    if "epoch_s" in r:
        ratio = f"  epoch {r['epoch_s']:.1f} s" + ratio + (
            f" ({r['epoch_with_teacher_pass_s']:.1f} s with the teacher pass)" if r.get("epoch_with_teacher_pass_s")
            else "")
    return (f"{r['method']:>9} {r['align']:>9} {cache:>5}  {r['median_ms']:8.1f} ms/step "
            f"[{r['q1_ms']:.1f}, {r['q3_ms']:.1f}] mean {r['mean_ms']:.1f}{ratio}  peak +{r['peak_mib']:.0f} MiB  "
            f"{ops} ops  | {phases}")


def check_output_file(path: Path) -> None:
    """Refuse a JSON path that cannot be written, before the timing rather than after it (creates nothing)."""
    if path.is_dir():
        raise DynaKDError(f"--output {path} is a folder; give a file name, e.g. {path / 'bench.json'}")
    if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".svg", ".pdf"):  # (the JSON went into it, the chart beside)
        raise DynaKDError(f"--output {path} names a picture: give the JSON file, e.g. {path.with_suffix('.json')}; "
                          "its chart is written beside it (.png)")
    folder = existing_part(path.parent)
    if not folder.is_dir():
        raise DynaKDError(f"cannot write --output {path}: {folder} is a file")
    if not os.access(folder, os.W_OK):
        raise DynaKDError(f"cannot write --output {path}: {folder} is not writable")


def distiller_records(cfg: DistillConfig) -> bool:
    """Whether a run of ``cfg`` replays its dynamics from CUDA graphs (``cuda_graphs`` on a GPU, a dynamics term)."""
    return cfg.cuda_graphs and cfg.terms["feature"] == "dynamics" and torch.cuda.is_available()


def processor_name() -> str:
    """The processor's model name (``platform.processor()`` is empty on most Linux machines)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def setup_info(base: DistillConfig, steps: int, warmup: int) -> dict[str, Any]:
    """What the timings depend on: the machine, the versions, the settings (the whole config under ``config``)."""
    import accelerate

    from .. import __version__

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else processor_name()
    kind = "cuda" if torch.cuda.is_available() else "cpu"  # (the device the bench trains on)
    data = "synthetic" if base.synthetic else base.train_file or base.data_dir or base.dataset
    return {"teacher": base.teacher, "student_layers": base.student_layers, "task": base.task, "data": data,
            "max_train_samples": base.max_train_samples, "group_by_length": base.group_by_length,
            "batch_size": base.batch_size, "max_seq_length": base.max_seq_length,
            "pad_to_multiple_of": pad_multiple(base, kind), "steps": steps,
            # the token-level windows' MiB the dynamics take on this device (grams.window_budget)
            "window_mib": window_budget(base.dynamics, kind),
            "warmup": warmup,
            "device": device, "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
            "allocator_env": allocator_env(),
            "transformers": transformers.__version__, "seed": base.seed, "fp16": base.fp16, "bf16": base.bf16,
            "teacher_cache_dtype": base.teacher_cache_dtype,
            "align": {k: v for k, v in dataclasses.asdict(base.align).items() if k != "name"},
            "torch_compile": base.torch_compile, "torch_compile_mode": base.torch_compile_mode,
            # what ran: CUDA graphs need a CUDA device (config keeps the setting as given)
            "cuda_graphs": base.cuda_graphs and torch.cuda.is_available(), "date": time.strftime("%Y-%m-%d"),
            "dynakd": __version__,
            "commit": source_commit(), "python": platform.python_version(), "accelerate": accelerate.__version__,
            "config": dataclasses.asdict(base)}
