"""Typed, validated run configuration: defaults < YAML file < command-line flags.

One ``DistillConfig`` describes every command (``finetune`` is ``method: task`` without a teacher).
Unknown keys are errors that name the closest valid key; the resolved config is written into the run folder.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import DynaKDError
from .schedules import Schedule, constant

COMPONENTS = ("deviation", "layer_change", "relations", "sensitivity")
FORMS = ("direction", "magnitude")
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]  # torch.compile

# Which loss terms each method switches on. "feature" is the method's intermediate-layer term.
METHOD_TERMS: dict[str, dict[str, Any]] = {
    "task": {"logit": False, "feature": None},
    "kd": {"logit": True, "feature": None},
    "static": {"logit": True, "feature": "static"},
    "pkd": {"logit": True, "feature": "pkd"},
    "dynamics": {"logit": False, "feature": "dynamics"},
    "full": {"logit": True, "feature": "dynamics"},
}
METHODS = tuple(METHOD_TERMS)  # DistillConfig.method's Literal names the same (tests/unit/test_config.py)
ALIGNERS = ("fixed", "attention", "ot")  # as AlignConfig.name's Literal


def layer_term(method: str) -> str | None:
    """The method's intermediate-layer term (``static``, ``pkd``, ``dynamics``), or None (``task``, ``kd``, or a name
    that is no method)."""
    return METHOD_TERMS.get(method, {}).get("feature")


def unread_options(method: str) -> set[str]:
    """The top-level settings ``method`` never reads: the layer term's weight, aligner, dynamics and hidden-state term
    without a layer term (``task``, ``kd``), the dynamics and the hidden-state term (which joins them) beside another
    layer term (``static``, ``pkd``), the logit term's weight and temperature without one (``task``, ``dynamics``);
    none for a name that is no method. Runs that differ only in these train alike."""
    terms = METHOD_TERMS.get(method)
    if terms is None:
        return set()
    unread = set() if terms["logit"] else {"alpha", "temperature"}
    if terms["feature"] is None:
        unread |= {"beta", "align", "dynamics", "hidden_weight"}
    elif terms["feature"] != "dynamics":
        unread |= {"dynamics", "hidden_weight"}
    return unread


def default_aligner(method: str) -> str:
    """The aligner when none is given: the baselines' fixed map for ``static`` and ``pkd`` (TinyBERT and Patient KD
    match layers by hand), optimal transport for the dynamics."""
    return "fixed" if layer_term(method) in ("static", "pkd") else "ot"


# Starting weight of the feature term when ``beta`` is not given: the terms live on very different scales
# (hidden-state MSE ~1, normalised first-token MSE ~1e-3, Gram / ratio MSE ~1e-2).
DEFAULT_BETA0 = {"static": 1.0, "pkd": 100.0, "dynamics": 10.0}


@dataclass
class DynamicsConfig:
    """The feature-dynamics loss (method.md, "Dynamics components")."""

    components: list[str] = field(default_factory=lambda: ["deviation", "layer_change", "relations"])
    forms: list[str] = field(default_factory=lambda: ["direction", "magnitude"])
    reference: Literal["batch", "ema", "dataset"] = "batch"
    ema_momentum: float = 0.99
    distance: Literal["mse", "cosine"] = "mse"
    pooling: Literal["auto", "mean", "cls", "tokens"] = "auto"  # auto: tokens for extractive QA, else mean
    relation_pairs: Literal["all", "adjacent"] = "all"
    relation_angle: bool = False
    qa_tokens: Literal["all", "context"] = "all"  # extractive QA: all real tokens, or the context tokens only
    sensitivity_noise: float = 0.1
    weights: dict[str, float] = field(default_factory=dict)
    # Multi-process runs: gather pooled features of every process before the batch forms (mean references, Gram
    # and distance structures), so they equal a single process's on the global batch. Off: per-process batches.
    gather: bool = False


@dataclass
class AlignConfig:
    """How student layers are matched to teacher layers (method.md, "Which student layer learns ...")."""

    # None: the method's aligner (``default_aligner``), resolved by ``validate`` (every entry point validates)
    name: Literal["fixed", "attention", "ot"] | None = None
    fixed_map: Literal["uniform", "skip", "last", "reversed"] = "uniform"
    layers: list[int] | None = None
    tau: float = 0.1
    learned: bool = False
    eps: float = 0.05
    iters: int = 20  # benchmarks/speed/ot_iterations.py: ~1% from the converged plan on real costs
    order_prior: float = 0.0
    plan_grad: bool = False
    plan_momentum: float = 0.9


@dataclass
class DistillConfig:
    """Every setting of a run: models, data, training, the method and its options (README, "Every option of the
    method"). Build one in Python or with ``build_config(*dicts)`` (later dicts win, nested keys as in YAML);
    ``validate`` checks it whole, and every entry point (``finetune``, ``distill``, ``evaluate``, the CLI) does."""

    # models
    teacher: str | None = None
    student: str | None = None
    student_layers: int | None = None
    student_layer_ids: list[int] | None = None
    model: str | None = None
    # data
    task: str = "sst2"
    data_dir: str | None = None
    train_file: str | None = None
    validation_file: str | None = None
    text_columns: list[str] | None = None
    label_column: str = "label"
    synthetic: bool = False
    max_seq_length: int = 128
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    data_seed: int = 0
    # No train set at hand (e.g. QNLI, whose GLUE dev file is all this machine has): train on this seeded fraction of
    # the eval split's examples and evaluate on the rest (a label-stratified split, seeded by data_seed).
    dev_split: float | None = None
    # A transfer set: this many more training rows, after the max_train_samples subset in the same seeded order, with
    # their labels hidden, so that only the teacher supervises them (DistilBERT and TinyBERT distil on unlabelled text).
    transfer_samples: int | None = None
    # extractive QA (SQuAD)
    doc_stride: int | None = None  # overlap of a context's windows in tokens; default min(128, max_seq_length // 2)
    max_answer_length: int = 30
    n_best: int = 20
    train_articles: int | None = None
    # training
    output: str | None = None
    overwrite: bool = False
    epochs: float = 3.0
    max_steps: int = -1
    batch_size: int = 32
    gradient_accumulation_steps: int = 1  # batches per optimizer step: the effective batch is this x batch_size
    eval_batch_size: int = 64
    # DataLoader worker processes (TrainingArguments.dataloader_num_workers): collation and teacher-cache reads run
    # there, beside the training step. 0: in the training process.
    dataloader_num_workers: int = 0
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    seed: int = 42
    fp16: bool = False
    bf16: bool = False
    torch_compile: bool = False
    # torch.compile's mode for the student and the dynamics losses (implies torch_compile, as in TrainingArguments):
    # 'reduce-overhead' replays CUDA graphs, the remedy for a launch-bound step (a small student on a large GPU).
    torch_compile_mode: CompileMode | None = None
    # Replay the dynamics losses from CUDA graphs recorded per batch size (cudagraphs.py), without torch.compile: a
    # launch-bound step on a GPU stops paying a launch per operator of the forms. Eager off a CUDA device.
    cuda_graphs: bool = False
    # Batches of similar length (the Trainer's length-grouped sampler): on SST-2 a random batch of 32 is 67% padding,
    # a length-grouped one 4% (benchmarks/LOG.md).
    group_by_length: bool = True
    logging_steps: int = 25
    eval_steps: int | None = None
    save_steps: int = 500  # 0: no checkpoints
    resume: bool = False
    keep_checkpoints: bool = False
    progress: bool = True
    eval_teacher: bool = True
    teacher_cache: str = "auto"
    teacher_cache_dtype: Literal["float16", "float32"] = "float16"
    push_to_hub: str | None = None  # a hub repository id: the finished run folder is uploaded there (hub.py)
    hub_private: bool = False  # create that repository private
    # method
    method: Literal["task", "kd", "static", "pkd", "dynamics", "full"] = "full"
    temperature: float = 2.0
    task_weight: Schedule = field(default_factory=lambda: constant(1.0))
    alpha: Schedule = field(default_factory=lambda: constant(1.0))
    beta: Schedule | None = None
    # A dynamics method (dynamics, full) plus static's token-level hidden-state MSE (through learned projections),
    # weighted by this schedule and spread over layer pairs by the same plan as the dynamics. None: off.
    hidden_weight: Schedule | None = None
    staged: float | None = None
    balance: bool = False
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    align: AlignConfig = field(default_factory=AlignConfig)

    def resolved_align(self) -> AlignConfig:
        """``align`` with its aligner named: the given one, else the method's (``default_aligner``)."""
        return self.align if self.align.name else dataclasses.replace(self.align, name=default_aligner(self.method))

    @property
    def terms(self) -> dict[str, Any]:
        return METHOD_TERMS[self.method]

    def beta_schedule(self) -> Schedule:
        """The feature-term weight: given, or the method's default linear decay to 0."""
        if self.beta is not None:
            return self.beta
        feature = self.terms["feature"]
        return Schedule("linear", 0.0 if feature is None else DEFAULT_BETA0.get(feature, 1.0), 0.0)  # a new term: 1

    def stride(self) -> int:
        """The window overlap for extractive QA: ``doc_stride``, or min(128, max_seq_length // 2)."""
        return self.doc_stride if self.doc_stride is not None else min(128, self.max_seq_length // 2)

    def to_dict(self) -> dict[str, Any]:
        """Every key, with the method's default feature weight written out (so a run folder says what it used)."""
        return dataclasses.asdict(self) | {"beta": dataclasses.asdict(self.beta_schedule())}


# ----------------------------------------------------------------------------------------------- parsing


def _closest(key: str, valid: list[str], prefix: str = "") -> str:
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f" (did you mean '{prefix}{match[0]}'?)" if match else f" (valid keys: {', '.join(sorted(valid))})"


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` to the annotated type ``tp`` or raise a DynaKDError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            hint = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            extra = f"; did you mean '{hint[0]}'?" if hint else ""
            raise DynaKDError(f"{where}: '{value}' is not one of {', '.join(map(str, choices))}{extra}")
        return value
    if dataclasses.is_dataclass(tp):
        if tp is Schedule and isinstance(value, (int, float)) and not isinstance(value, bool):
            return constant(float(value))
        if not isinstance(value, dict):
            keys = ", ".join(f.name for f in dataclasses.fields(tp))
            raise DynaKDError(f"{where}: expected a mapping, got {value!r} (its settings are spelt {where}.KEY=VALUE; "
                              f"keys: {keys})")
        return _from_dict(tp, value, where)
    if origin is list:
        (inner,) = typing.get_args(tp)
        items = value if isinstance(value, list) else [value]
        if isinstance(value, str):
            # "a, b" is two names, not "a" and " b"; a stray comma adds no empty name
            items = [v.strip() for v in value.split(",") if v.strip()]
        try:
            return [_coerce(v, inner, where) for v in items]
        except DynaKDError:
            if isinstance(value, list) or inner not in (int, float):  # (a choice's own message names the choices)
                raise
            raise DynaKDError(f"{where}: expected a list of {inner.__name__}s, e.g. [1, 2], got {value!r}") from None
    if origin is dict:
        if not isinstance(value, dict):
            raise DynaKDError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _coerce(v, typing.get_args(tp)[1], f"{where}.{k}") for k, v in value.items()}
    return _scalar(value, tp, where)


def _scalar(value: Any, tp: Any, where: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise DynaKDError(f"{where}: expected true or false, got {value!r}")
    if tp is str and isinstance(value, (list, dict)):  # str() of it would name a folder `['a', 'b']`
        raise DynaKDError(f"{where}: expected a string, got {value!r}")
    try:
        if isinstance(value, bool) and tp in (int, float):  # YAML reads `lr: yes` as True, not as 1.0
            raise ValueError
        if tp is int and float(value) != int(float(value)):
            raise ValueError
        return tp(value) if tp is not int else int(float(value))
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(float(".inf"))
        raise DynaKDError(f"{where}: expected {tp.__name__}, got {value!r}") from None


def _from_dict(cls: type, data: dict[str, Any], where: str = "config") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        key = str(key).replace("-", "_")
        if key not in names:
            prefix = "" if where == "config" else f"{where.removeprefix('config.')}."
            raise DynaKDError(f"unknown config key '{prefix}{key}'{_closest(key, names, prefix)}")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}".replace("config.", "", 1))
    return cls(**kwargs)


def underscored(layer: dict[str, Any]) -> dict[str, Any]:
    """``layer`` with every key's dashes as underscores, nested mappings too (``max-seq-length`` is
    ``max_seq_length``: spelt either way in one file, merged as one key with the others)."""
    return {str(k).replace("-", "_"): underscored(v) if isinstance(v, dict) else v for k, v in layer.items()}


def merge_dicts(base: dict[str, Any], update: dict[str, Any], unset: bool = False) -> dict[str, Any]:
    """``update`` over ``base``, nested mappings merged key by key. With ``unset``, a ``None`` (``key:`` or
    ``key: null`` in YAML, ``--set key=``) removes the key, so a later config layer can give one back to its
    default."""
    out = dict(base)
    for key, value in update.items():
        if value is None and unset:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_dicts(out[key], value, unset)
        else:  # (a new section's unset keys are nobody's to unset: dropped)
            out[key] = without_unset(value) if unset and isinstance(value, dict) else value
    return out


def merge_layers(*layers: dict[str, Any]) -> dict[str, Any]:
    """Config layers merged, later wins, a ``None`` unsets (``merge_dicts``); keys spelt with dashes
    (max-seq-length) meet their underscored selves of other layers."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = merge_dicts(merged, underscored(layer), unset=True)
    return merged


def without_unset(layer: dict[str, Any]) -> dict[str, Any]:
    """``layer`` without the keys it sets to ``None`` (nested ones too): what it sets, read on its own."""
    return {k: without_unset(v) if isinstance(v, dict) else v for k, v in layer.items() if v is not None}


def existing_part(path: Path) -> Path:
    """The nearest part of ``path`` that exists (itself, or the folder where creating it would start; a dangling link
    counts): where a path that cannot be a folder shows up as something else, e.g. a file."""
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping that names one key twice."""


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping naming one key twice: PyYAML keeps the last without a word, so
    ``lr: 1e-4`` further down a config silently won over the one the user was looking at."""

    def construct_mapping(self, node, deep=False):
        lines: dict[Any, int] = {}  # each key's first line
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`, whose keys a mapping may override
                continue
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                first = lines.get(key)
            except TypeError:  # an unhashable key: SafeLoader's own error names it
                continue
            if first is not None:
                where = f"on line {line}" if first == line else f"at lines {first} and {line}"
                raise DuplicateKeyError(None, None, f"key '{key}' is given twice, {where}; keep one",
                                        key_node.start_mark)
            lines[key] = line
        return super().construct_mapping(node, deep)


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        raise DynaKDError(f"{p} is a folder, not a config file; give a YAML file")
    if not p.is_file():
        raise DynaKDError(f"config file not found: {p}")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=StrictLoader) or {}
    except (OSError, UnicodeDecodeError) as e:
        raise DynaKDError(f"cannot read config file {p}: {e.strerror if isinstance(e, OSError) else 'not UTF-8 text'}"
                          ) from None
    except DuplicateKeyError as e:
        raise DynaKDError(f"{p}: {e.problem}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise DynaKDError(f"malformed YAML in {p}{at}: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise DynaKDError(f"{p}: the top level must be a mapping of config keys")
    return data


# The sections a sweep file has at its top level and a run's config never has (experiments/ablate.py)
SWEEP_SECTIONS = ("base", "grid")


def load_run_config(path: str | Path) -> dict[str, Any]:
    """A run's config file (``--config`` of distill, finetune, evaluate, bench), as ``load_yaml`` reads it. A sweep
    file given here is named as one: its keys were refused one by one, ``name`` as a misspelt ``dynamics``."""
    layer = load_yaml(path)
    if any(key in layer for key in SWEEP_SECTIONS):
        raise DynaKDError(f"{path} is a sweep file (base/grid): run it with dynakd ablate --config {path}")
    return layer


def nest(key: str, value: Any) -> dict[str, Any]:
    """``("align.eps", 0.1)`` -> ``{"align": {"eps": 0.1}}``."""
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


def parse_override(text: str) -> dict[str, Any]:
    """``"align.eps=0.1"`` -> ``{"align": {"eps": 0.1}}`` (the value is read as YAML)."""
    if "=" not in text:
        raise DynaKDError(f"--set expects KEY=VALUE, got '{text}'")
    key, raw = text.split("=", 1)
    try:
        return nest(key, yaml.load(raw, Loader=StrictLoader) if raw else None)
    except yaml.YAMLError as e:  # `--set lr=[1`
        raise DynaKDError(f"--set {text}: the value is not valid YAML: {getattr(e, 'problem', None) or e}") from None


def parse_layer(layer: dict[str, Any]) -> None:
    """Check one config layer's keys, value types and list choices on their own (how layers combine is
    ``build_config``'s)."""
    _check_dynamics_choices(_from_dict(DistillConfig, without_unset(layer)).dynamics)


def build_config(*layers: dict[str, Any] | DistillConfig, **overrides: Any) -> DistillConfig:
    """Merge config layers (later wins; a ``None`` gives a key set by an earlier layer back to its default), parse
    them into a DistillConfig and validate it. A layer is a dict of config keys as in YAML or a whole DistillConfig;
    keyword arguments are a last layer: ``build_config(cfg, lr=1e-4)``."""
    for layer in layers:
        if not isinstance(layer, (dict, DistillConfig)):
            raise DynaKDError(f"build_config takes dicts of config keys or DistillConfigs, got {type(layer).__name__}")
    merged = merge_layers(*(dataclasses.asdict(x) if isinstance(x, DistillConfig) else x for x in layers), overrides)
    method = merged.get("method", "full")
    if method in METHOD_TERMS:  # (an unknown method fails in parsing, with a suggestion)
        probe = DistillConfig(method=method)
        for name, default in (("alpha", probe.alpha), ("beta", probe.beta_schedule()),
                              ("task_weight", probe.task_weight), ("hidden_weight", Schedule())):
            part = merged.get(name)
            # a mapping without 'kind' amends the default: {warmup: 0.1}; --set beta.start=3 (linear from 3 to 0)
            if isinstance(part, dict) and "kind" not in part:
                moves = sorted(set(part) & {"end", "switch"})
                if default.kind == "constant" and moves:  # else `alpha: {end: 0}` would keep 1 without a word
                    raise DynaKDError(f"{name}: a constant weight has no {' or '.join(moves)}; give kind: linear, "
                                      "cosine or step to move it during training")
                merged[name] = {**dataclasses.asdict(default), **part}
    return validate(_from_dict(DistillConfig, merged))


def as_config(cfg: DistillConfig | dict[str, Any], where: str) -> DistillConfig:
    """What the Python entry points (``where``: ``distill``, ``Distiller``, ...) take: a DistillConfig, or a dict of
    config keys as in YAML (``build_config``'s), which becomes one; validated."""
    if isinstance(cfg, DistillConfig):
        return validate(cfg)
    if isinstance(cfg, dict):
        return build_config(cfg)
    raise DynaKDError(f"{where} takes a DistillConfig or a dict of config keys, got {type(cfg).__name__}")


def _check_dev_split(task) -> None:
    """``dev_split`` cuts a GLUE task's one eval split (or a csv/json task's one file) by example; SQuAD is split by
    article instead."""
    if task.is_qa:
        raise DynaKDError("dev_split cuts a task's evaluation set by example (GLUE, csv, json); split a SQuAD file "
                          "by article with train_articles")
    if len(task.eval_splits) != 1:
        splits = ", ".join(task.eval_splits)
        raise DynaKDError(f"--dev-split needs a task with one eval split; {task.name} has {splits}")


def _check_transfer(cfg: DistillConfig, task) -> None:
    """Transfer rows carry no label: they need a teacher, and a labelled subset to follow."""
    if task.is_qa:
        raise DynaKDError("transfer_samples applies to classification and regression tasks, not extractive QA")
    if cfg.max_train_samples is None:
        raise DynaKDError("transfer_samples takes the rows after the max_train_samples subset; set max_train_samples")
    if cfg.method == "task":
        raise DynaKDError("transfer_samples: the transfer rows have no labels, and method 'task' (and finetune) has "
                          "no teacher to learn them from; use kd or full")


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
    cfg.align = cfg.resolved_align()
    for key in ("teacher", "student", "model", "data_dir", "train_file", "validation_file", "output", "teacher_cache"):
        value = getattr(cfg, key)
        if isinstance(value, str) and value.startswith("~"):  # a shell expands ~, a YAML file or --set does not
            setattr(cfg, key, os.path.expanduser(value))
    if cfg.teacher_cache == "False":  # YAML reads `teacher_cache: off` (and no, false) as a boolean
        cfg.teacher_cache = "off"
    _check_finite(cfg)
    checks = [
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
        (cfg.epochs > 0 or cfg.max_steps > 0, "epochs or max_steps must be > 0"),
        (cfg.align.eps > 0, f"align.eps must be > 0, got {cfg.align.eps}"),
        (cfg.align.tau > 0, f"align.tau must be > 0, got {cfg.align.tau}"),
        (0 < cfg.align.iters <= MAX_ITERS, f"align.iters must be in [1, {MAX_ITERS}], got {cfg.align.iters}"),
        (0 <= cfg.align.plan_momentum < 1, f"align.plan_momentum must be in [0, 1), got {cfg.align.plan_momentum}"),
        (cfg.align.order_prior >= 0, f"align.order_prior must be >= 0, got {cfg.align.order_prior}"),
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
        (not (cfg.fp16 and cfg.bf16), "choose one of fp16 and bf16"),
        (0 <= cfg.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {cfg.warmup_ratio}"),
        (cfg.logging_steps >= 1, f"logging_steps must be >= 1, got {cfg.logging_steps}"),
        (cfg.eval_steps is None or cfg.eval_steps >= 1, f"eval_steps must be >= 1, got {cfg.eval_steps}"),
        (cfg.save_steps >= 0, f"save_steps must be >= 0 (0 disables checkpoints), got {cfg.save_steps}"),
        (not (cfg.resume and cfg.overwrite), "choose one of resume and overwrite"),
        (0 < cfg.eval_batch_size <= MAX_BATCH, f"eval_batch_size must be in [1, {MAX_BATCH}], got "
                                               f"{cfg.eval_batch_size}"),
        (cfg.dataloader_num_workers >= 0, f"dataloader_num_workers must be >= 0, got {cfg.dataloader_num_workers}"),
        (cfg.dataloader_num_workers <= MAX_WORKERS, f"dataloader_num_workers must be at most {MAX_WORKERS}, got "
                                                    f"{cfg.dataloader_num_workers}"),
        (cfg.push_to_hub or not cfg.hub_private, "hub_private creates the --push-to-hub repository private; it needs "
         "--push-to-hub REPO"),
        (cfg.max_grad_norm >= 0, f"max_grad_norm must be >= 0, got {cfg.max_grad_norm}"),
        (cfg.max_train_samples is None or cfg.max_train_samples > 0, "max_train_samples must be > 0"),
        (cfg.max_eval_samples is None or cfg.max_eval_samples > 0, "max_eval_samples must be > 0"),
        (cfg.dynamics.sensitivity_noise > 0, "dynamics.sensitivity_noise must be > 0"),
        (cfg.doc_stride is None or cfg.doc_stride >= 1, f"doc_stride must be >= 1, got {cfg.doc_stride}"),
        (cfg.max_answer_length >= 1, f"max_answer_length must be >= 1, got {cfg.max_answer_length}"),
        (cfg.n_best >= 1, f"n_best must be >= 1, got {cfg.n_best}"),
        (cfg.train_articles is None or cfg.train_articles >= 1, "train_articles must be >= 1"),
        (cfg.dev_split is None or 0 < cfg.dev_split < 1, f"dev_split must be in (0, 1), got {cfg.dev_split}"),
        (cfg.transfer_samples is None or cfg.transfer_samples >= 0, "transfer_samples must be >= 0"),
    ]
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
    for ok, message in checks:
        if not ok:
            raise DynaKDError(message)
    for name in ("task_weight", "alpha", "beta", "hidden_weight"):  # a constant never reads its end: one spelling
        sched = getattr(cfg, name)  # (its start), so run folders that spelt it otherwise compare as the same run
        if sched is not None and sched.kind == "constant":
            sched.end = sched.start
    _check_teacher_cache(cfg.teacher_cache)
    if cfg.torch_compile_mode is not None:
        cfg.torch_compile = True  # a compile mode asks for compilation, as in TrainingArguments
    from .data.tasks import get_task

    task = get_task(cfg.task)  # unknown task names fail here, before any model is loaded
    cfg.task = task.name  # "SST-2" and "sst2" name one run
    _check_data_flags(cfg, task)
    if cfg.dynamics.pooling == "auto":  # token-level structure for QA (answers are token spans), pooled otherwise
        cfg.dynamics.pooling = "tokens" if task.is_qa else "mean"
    if cfg.dev_split is not None:
        _check_dev_split(task)
    if cfg.transfer_samples:
        _check_transfer(cfg, task)
    if task.is_qa and cfg.doc_stride is not None and cfg.doc_stride >= cfg.max_seq_length:
        raise DynaKDError(f"doc_stride ({cfg.doc_stride}) must be smaller than max_seq_length ({cfg.max_seq_length})")
    _check_dynamics_choices(cfg.dynamics)
    _check_dynamics(cfg)
    _check_cuda_graphs(cfg)
    return cfg


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
        raise DynaKDError("dynamics.reference must be 'batch' with pooling 'tokens' (references are pooled means)")
    from .data.tasks import get_task

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
    """Files and columns a task does not read are refused: a GLUE task given --train-file used to train on GLUE's
    data (and record the file in the run folder as if it had read it)."""
    if task.is_user_data:
        return
    files = [f for f, v in (("train_file", cfg.train_file), ("validation_file", cfg.validation_file)) if v]
    columns = [f for f, v in (("text_columns", cfg.text_columns), ("label_column", cfg.label_column != "label")) if v]
    unread = columns if task.is_qa else files + columns
    if unread:
        reads = "SQuAD JSON files (train_file, validation_file)" if task.is_qa else \
            "the GLUE TSV files of --data-dir, or the hub"
        raise DynaKDError(f"task {task.name} reads {reads}, not {', '.join(unread)}: those are for --task csv or json "
                          "(your own files)")


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


def save_config(cfg: DistillConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
