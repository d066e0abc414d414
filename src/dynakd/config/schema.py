"""The run configuration's shape: the methods and the loss terms each switches on, and the dataclasses that hold
every setting with its default (``DistillConfig``, with its ``DynamicsConfig`` and ``AlignConfig``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from ..schedules import Schedule, constant

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
DATA_PATHS = ("data_dir", "train_file", "validation_file")  # the data settings that name files or folders
DATASET_KEYS = ("dataset", "dataset_config", "train_split", "eval_split")  # task 'dataset''s (a dataset by name)
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


# The align.* settings each aligner reads (``name`` aside): another aligner's are noted as unread (a sweep's base may
# give them to every aligner of its grid), but the fixed map's, which are refused with another aligner.
ALIGNER_READS = {"fixed": {"fixed_map", "layers"},
                 "attention": {"tau", "learned", "order_prior", "relative", "plan_momentum", "plan_every"},
                 "ot": {"eps", "iters", "order_prior", "plan_grad", "plan_momentum", "plan_every"}}


def default_aligner(method: str) -> str:
    """The aligner when none is given: the baselines' fixed map for ``static`` and ``pkd`` (TinyBERT and Patient KD
    match layers by hand), optimal transport for the dynamics."""
    return "fixed" if layer_term(method) in ("static", "pkd") else "ot"


# Starting weight of the feature term when ``beta`` is not given: the terms live on very different scales
# (hidden-state MSE ~1; pkd's squared distance of L2-normalised first tokens, summed over dimensions as Patient KD's,
# small for a student cut from its teacher; Gram / ratio MSE ~1e-2).
DEFAULT_BETA0 = {"static": 1.0, "pkd": 100.0, "dynamics": 10.0}


def default_beta(method: str) -> Schedule:
    """A method's feature-term weight when ``beta`` is not given: a linear decay to 0 from its term's starting weight
    (``DEFAULT_BETA0``; a term of one's own: 1), or 0 for a method without a layer term."""
    feature = layer_term(method)
    return Schedule("linear", 0.0 if feature is None else DEFAULT_BETA0.get(feature, 1.0), 0.0)


@dataclass
class DynamicsConfig:
    """The feature-dynamics loss (docs/method.md; the design's method.md, "Dynamics components")."""

    components: list[str] = field(default_factory=lambda: ["deviation", "layer_change", "relations"])
    forms: list[str] = field(default_factory=lambda: ["direction", "magnitude"])
    reference: Literal["batch", "ema", "dataset"] = "batch"
    ema_momentum: float = 0.99
    distance: Literal["mse", "cosine"] = "mse"
    # auto: tokens for extractive QA, else mean (``auto_pooling``); a run's dynakd.yaml writes the task's own as auto
    pooling: Literal["auto", "mean", "cls", "tokens"] = "auto"
    relation_pairs: Literal["all", "adjacent"] = "all"
    relation_angle: bool = False
    qa_tokens: Literal["all", "context"] = "all"  # extractive QA: all real tokens, or the context tokens only
    sensitivity_noise: float = 0.1
    weights: dict[str, float] = field(default_factory=dict)
    # Multi-process runs: gather pooled features of every process before the batch forms (mean references, Gram
    # and distance structures), so they equal a single process's on the global batch. Off: per-process batches.
    gather: bool = False
    # Token-level dynamics: compare the forms under the aligner's plan (losses/planfirst.py), so that the backward keeps
    # the teacher's forms summed under it, not every layer pair's; the same loss and gradients. Only where the plan
    # takes no gradient from the costs (every aligner but OT with plan_grad). False: the costs as tensors.
    plan_first: bool = True
    # Token-level dynamics under the plan (plan_first), mse: where a batch's forms would pass this many MiB, the costs
    # are computed a few windows at a time, each chunk's forms gone before the next, their gradient in the backward
    # (losses/grams.windowed_costs): less memory for more compute. 0: all at once. Unset: 32 on a CPU, where they
    # also took less time over a SQuAD epoch (fresh large tensors cost the host's allocator page faults), 0 on
    # other devices (a GPU), where each window's ~1,000 operators are launches (not yet measured there);
    # grams.WINDOW_MIB.
    window_mib: float | None = None
    # Token-level dynamics: each training step compares the forms of this many tokens per window, drawn at random
    # among the tokens the dynamics see (losses/dynamics.sample_tokens), an estimate of the forms of all of them at
    # about (token_sample / tokens)^2 of their cost. A Distiller in eval mode compares every token. None: every
    # token, the method.
    token_sample: int | None = None


@dataclass
class AlignConfig:
    """How student layers are matched to teacher layers (docs/method.md; the design's method.md, "Which student layer
    learns ...")."""

    # None: the method's aligner (``default_aligner``), resolved by ``validate`` (every entry point validates)
    name: Literal["fixed", "attention", "ot"] | None = None
    fixed_map: Literal["uniform", "skip", "last", "reversed", "random"] = "uniform"  # random: drawn by the seed
    layers: list[int] | None = None
    tau: float = 0.1
    learned: bool = False
    # attention: each teacher layer's cost less its mean over the student layers (docs/method.md)
    relative: bool = False
    eps: float = 0.05
    iters: int = 20  # ~1% from the converged plan on real costs of 2-3 layer students (ot_iterations.py); more at depth
    order_prior: float = 0.0  # OT and attention: weight of |m/Ls - l/Lt| added to the normalised costs
    plan_grad: bool = False
    plan_momentum: float = 0.9
    # compute the plan from one training batch's costs in N and hold it for the N - 1 after (attention, OT): token-level
    # dynamics in windows then take one pass for the held batches, and OT's host loop runs once in N (align/base.py)
    plan_every: int = 1


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
    # task 'dataset': a dataset by name, the hub's ("imdb", "user/name"), a folder of data files or one save_to_disk
    # wrote; its config (subset), and its splits (or split expressions, "train[:90%]") that train and evaluate
    dataset: str | None = None
    dataset_config: str | None = None
    train_split: str = "train"
    eval_split: str = "validation"
    text_columns: list[str] | None = None
    label_column: str = "label"
    synthetic: bool = False
    max_seq_length: int = 128
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    data_seed: int = 0
    # No train set at hand (e.g. QNLI, whose GLUE dev file is all this machine has): train on this seeded fraction of
    # the eval split's examples and evaluate on the rest (a label-stratified split, seeded by data_seed; a regression
    # task's unstratified).
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
    # Under several processes (DDP): whether DDP looks for student parameters no loss term reached, at every step
    # (TrainingArguments.ddp_find_unused_parameters, which the Trainer sets True for a transformers model, with a
    # warning from each process that it found none and costs a pass over the graph). Unset: false where a term that
    # reads the logits weighs something at every step and the architecture uses every parameter in classifying (true
    # under staged dynamics without a logit term, a task weight from 0, or XLNet, whose mask_emb classification never
    # reads); a model of one's own with a head no term reads needs true (the error says so).
    ddp_find_unused_parameters: bool | None = None
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
    # Each batch pads to a multiple of this many tokens (1: to its longest row). Unset: 8 on a CUDA device (tensor
    # cores' tiles) or under torch.compile (fewer shapes to compile), 1 elsewhere: on a CPU the rounding only adds
    # work (SST-2's batches: 20% more tokens, ~1.3x the step time). 16 makes a run with the teacher cache (float32
    # features) the same to the last bit as one with the live teacher on an AVX-512 CPU, with max_seq_length a
    # multiple of 16 (a batch that would pad past it pads to its longest row; README, "Speed").
    pad_to_multiple_of: int | None = None
    logging_steps: int = 25
    # where the Trainer sends the logs (every loss term and weight): transformers' report_to names; the alignment
    # pictures go to TensorBoard's images where it is among them (and to alignment.png whatever)
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
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
    # let transformers run a model's own code (its config.json's auto_map: a hub model's modeling file), as
    # run_glue.py's --trust_remote_code; never lent from a run folder's dynakd.yaml (models.remote_code)
    trust_remote_code: bool = False
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
        return self.beta if self.beta is not None else default_beta(self.method)

    def pooling_as_chosen(self) -> str:
        """The dynamics' pooling as a config gives it: ``auto`` where it is the one the task's ``auto`` resolves to
        (a run's record, a ``build_config`` layer: another task then takes its own)."""
        pooling = self.dynamics.pooling
        return "auto" if pooling != "auto" and pooling == auto_pooling(self.task) else pooling

    def precision(self) -> str:
        """The autocast the run trains and scores under: ``bf16``, ``fp16``, or ``fp32`` (none)."""
        return "bf16" if self.bf16 else "fp16" if self.fp16 else "fp32"

    def stride(self) -> int:
        """The window overlap for extractive QA: ``doc_stride``, or min(128, max_seq_length // 2)."""
        return self.doc_stride if self.doc_stride is not None else min(128, self.max_seq_length // 2)

    def to_dict(self) -> dict[str, Any]:
        """Every key, with the method's default feature weight written out (so a run folder says what it used); a
        method without a feature term leaves it as given (its saved dynakd.yaml, reused with --method full, trained
        with the weight 0 it had resolved). The dynamics' pooling that the task's ``auto`` gives is written ``auto``:
        the saved dynakd.yaml reused with a task of the other kind pools for that task (a sentence task's ``mean``
        had given extractive QA pooled dynamics, and QA's ``tokens`` a sentence task token-level ones), and the task
        beside it says what ``auto`` was."""
        out = dataclasses.asdict(self)
        out["dynamics"]["pooling"] = self.pooling_as_chosen()
        if self.terms["feature"] is None:
            return out
        return out | {"beta": dataclasses.asdict(self.beta_schedule())}


def auto_pooling(task: str) -> str | None:
    """What the dynamics' ``pooling: auto`` resolves to for ``task`` (a task name as a config gives it): token-level
    structure for extractive QA (answers are token spans), the mean of the tokens otherwise; None for a task not
    known (a config not yet validated)."""
    from ..data.tasks import get_task  # (here, not above: the data package imports datasets, a slow import)
    from ..errors import DynaKDError

    try:
        return "tokens" if get_task(task).is_qa else "mean"
    except DynaKDError:
        return None
