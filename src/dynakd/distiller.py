"""The distiller: features -> aligner plan -> named loss terms -> scheduled weights -> one loss.

It owns every piece of distillation state (aligner, projections, running references) so that a custom training loop
needs only ``out = distiller(student_features, teacher_features, labels, progress)`` and ``out.loss``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from . import distributed
from .align import Aligner, build_aligner
from .config import DistillConfig, as_config
from .config.checks import ONE_LAYER_RELATIVE
from .cudagraphs import GraphedDynamics
from .data.prepare import fraction
from .data.tasks import get_task
from .errors import DynaKDError
from .features import HIDDEN_LABEL, Features, StackedHidden, stack_hidden
from .losses import (
    DynamicsOptions,
    dynamics_costs,
    hidden_mse_costs,
    logit_kd_loss,
    pkd_costs,
    plan_loss,
    qa_logit_kd_loss,
    qa_task_loss,
    task_loss,
)
from .losses.dynamics import Hidden, anchors_from_plan, pool, pool_features, pooled_costs, sample_tokens
from .losses.planfirst import PlanFirst, cost_value
from .students import check_count


@dataclass
class DistillOutput:
    """What one ``Distiller`` call returns: the weighted total ``loss`` to backpropagate, every unweighted term by
    name (``task``, ``logit``, ``dyn/<component>``, ``static``, ``pkd``, ``hidden``), the scheduled weight of each
    term group (``task``, ``logit``, ``feature``), the layer plan used (``[Ls, Lt]``, rows sum to 1; None without
    a layer term) and each term as the loss sums it (``weighted``: its group's weight x its component's weight x the
    term, over its balance divisor; a term that weighs 0 is absent)."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]  # unweighted
    weights: dict[str, float]  # scheduled weight of each term group
    plan: torch.Tensor | None
    weighted: dict[str, torch.Tensor] = field(default_factory=dict)  # the loss is their sum


def compile_dynamics(mode: str | None, dynamic: bool = True):
    """``dynamics_costs`` compiled in ``mode`` (torch.compile's), with dynamic shapes by default: no recompilation for
    a new batch size or length (the function pools token states itself, so with static shapes every padded length
    would compile, and record CUDA graphs, anew). torch.compile takes a mode or options, not both, so the mode goes
    in as its options, with inductor's coalescing analysis of tilings off: with dynamic shapes it failed an assertion
    while compiling the cached `full` step's graph (torch 2.11, H200, benchmarks/speed/RESULTS.md; its own config
    says it does not yet apply to dynamic shapes)."""
    import torch._inductor.config  # (not imported by torch itself; a compiled run imports it anyway)

    options = dict(torch._inductor.list_mode_options(mode or "default"))
    if hasattr(torch._inductor.config.triton, "coalesce_tiling_analysis"):  # torch >= 2.8
        options["triton.coalesce_tiling_analysis"] = False
    return torch.compile(dynamics_costs, dynamic=dynamic, options=options)


def term_weights(cfg: DistillConfig, progress: float, *, hidden: bool = False) -> dict[str, float]:
    """Each term group's scheduled weight at ``progress`` (``Distiller.weights``; ``hidden``: the run has the
    hidden-state term), from the config alone."""
    w = {"task": cfg.task_weight(progress), "logit": cfg.alpha(progress), "feature": cfg.beta_schedule()(progress)}
    if hidden:
        w["hidden"] = cfg.hidden_weight(progress)
    if cfg.staged is not None:  # stage 1: logit + features; stage 2: task + logit
        off = ("feature", "hidden") if progress >= cfg.staged else ("task",)
        w.update({group: 0.0 for group in off if group in w})
    if not cfg.terms["logit"]:
        w["logit"] = 0.0
    return w


def logits_always_reached(cfg: DistillConfig, steps: int = 1000) -> bool:
    """Whether a term that reads the student's logits (task, logit) weighs something at every point of training
    (read at ``steps`` points and at the stage boundary): where none does, the head gets no gradient that step."""
    points = {i / steps for i in range(steps + 1)} | ({cfg.staged} if cfg.staged is not None else set())
    return all((w := term_weights(cfg, p))["task"] > 0 or w["logit"] > 0 for p in points)


# What the distiller may train besides the student (named in the refusals of FSDP1 and DeepSpeed, and of an
# optimizer without them)
OWN_PARAMS = ("hidden-state projections of method 'static', of hidden_weight and of 'pkd' between different "
              "widths; align.learned queries")
# Training batches after which an own loop's distiller parameters that have not moved are noted (_check_stepped):
# more than any accumulation of gradients steps over, so that only parameters no optimizer holds stay as they began
STEPPED_BY = 64


class Distiller(nn.Module):
    """The distillation loss of ``cfg`` (its method, aligner, dynamics, schedules) for a student and teacher of the
    given depths and widths: ``distiller(student_features, teacher_features, labels, progress)`` gives a
    ``DistillOutput``. Features come from ``dynakd.capture(model, batch)``; ``progress`` is the fraction of training
    done, in [0, 1], which the schedules read. The module holds all distillation state (aligner and its running plan,
    projections, references, term balance): put its parameters in the optimizer (``DistillationTrainer`` does) and
    its ``state_dict`` in checkpoints. ``cfg``: a ``DistillConfig`` or a dict of config keys (``build_config``'s).
    ``regression``, ``qa`` and ``same_tokenizer`` describe the task and models (``regression`` and ``qa`` must agree
    with the config's task; ``task: csv`` takes either). ``aligner``: an aligner of one's own (a subclass of
    ``dynakd.align.Aligner`` built for ``student_layers`` and ``teacher_layers``) in place of the config's ``align``,
    for a method that compares layers."""

    def __init__(
        self,
        cfg: DistillConfig | dict,
        *,
        student_layers: int,
        teacher_layers: int,
        student_width: int,
        teacher_width: int,
        regression: bool = False,
        same_tokenizer: bool = True,
        qa: bool = False,
        label_smoothing: float = 0.0,
        aligner: Aligner | None = None,
    ):
        super().__init__()
        for name, value in (("student_layers", student_layers), ("teacher_layers", teacher_layers),
                            ("student_width", student_width), ("teacher_width", teacher_width)):
            check_count(name, value)
        cfg = as_config(cfg, "Distiller")  # a config built in Python gets the checks (and messages) of the command line
        check_task(cfg, regression, qa)
        self.cfg, self.regression, self.qa = cfg, regression, qa
        self.feature = cfg.terms["feature"]
        check_compatible(cfg, same_tokenizer, qa)
        self.token_level = token_level(cfg, qa)  # then both models must read the same tokens (checked per batch)
        self.label_smoothing = 0.0
        self.set_label_smoothing(label_smoothing)
        if aligner is not None:
            _check_own_aligner(aligner, cfg, self.feature, student_layers, teacher_layers)
        elif self.feature:
            align = cfg.resolved_align()
            if align.name == "attention" and align.relative and student_layers < 2:
                raise DynaKDError(ONE_LAYER_RELATIVE)
            aligner = build_aligner(align, student_layers, teacher_layers, cfg.seed)
        self.aligner = aligner
        self.hidden_term = self.feature == "dynamics" and cfg.hidden_weight is not None  # dynamics + static's term
        pkd_proj = self.feature == "pkd" and student_width != teacher_width
        needs_proj = self.feature == "static" or self.hidden_term or pkd_proj
        self.projections = (
            nn.ModuleList(nn.Linear(student_width, teacher_width) for _ in range(student_layers))
            if needs_proj
            else None
        )
        dyn = cfg.dynamics
        self.opts = DynamicsOptions(components=dyn.components, forms=dyn.forms, distance=dyn.distance,
                                    pooling=dyn.pooling, relation_pairs=dyn.relation_pairs,
                                    relation_angle=dyn.relation_angle, window_mib=dyn.window_mib)
        # With --torch-compile the dynamics (~190 small operators forward, ~220 backward) become one graph of fused
        # kernels: where a step is launch-bound (a small student on a GPU) these operators are most of its cost
        # (benchmarks/speed/RESULTS.md). One graph, no breaks; dynamic shapes, so new batch sizes do not recompile.
        self._compiled = compile_dynamics(cfg.torch_compile_mode) if cfg.torch_compile else None
        # With cuda_graphs the same operators are recorded once per batch size and replayed (cudagraphs.py).
        self.graphed = GraphedDynamics(self.opts) if cfg.cuda_graphs and self.feature == "dynamics" else None
        self.register_buffer("ref_s", torch.zeros(student_layers + 1, student_width))
        self.register_buffer("ref_t", torch.zeros(teacher_layers + 1, teacher_width))
        self.register_buffer("ref_steps", torch.zeros((), dtype=torch.long))
        self.teacher_ref_fixed = False
        self._first_batch_checked = False
        self._magnitudes: dict[str, float] = {}
        # own loops: the distiller's parameters at its first training batch, until STEPPED_BY's (_check_stepped);
        # a DistillationTrainer checks its optimizer itself and sets this None
        self._own_params_at_start: list[torch.Tensor] | None = []
        self._training_batches = 0

    def set_label_smoothing(self, value: float) -> None:
        """Label smoothing of the task term's cross-entropy (``TrainingArguments.label_smoothing_factor``)."""
        if value and (self.qa or self.regression):
            raise DynaKDError("label smoothing applies to classification labels, not to "
                              f"{'start/end positions' if self.qa else 'regression targets'}")
        if not 0 <= value < 1:
            raise DynaKDError(f"label smoothing must be in [0, 1), got {value}")
        self.label_smoothing = float(value)

    def get_extra_state(self) -> dict:
        """State outside parameters and buffers, so that ``state_dict`` holds all a resumed run needs, and the
        aligner's class (a running plan of one aligner loaded into another went without a word)."""
        return {"magnitudes": dict(self._magnitudes), "teacher_ref_fixed": self.teacher_ref_fixed,
                "aligner": self._aligner_name(), "plans_tracked": getattr(self.aligner, "tracked", None)}

    def _aligner_name(self) -> str | None:
        return None if self.aligner is None else type(self.aligner).__name__

    def set_extra_state(self, state: dict) -> None:
        saved = state.get("aligner", self._aligner_name())  # (a state written before it was recorded: not checked)
        if saved != self._aligner_name():
            raise DynaKDError(f"the distiller's state was saved with {saved or 'no aligner'} and this distiller has "
                              f"{self._aligner_name() or 'none'}: resume with the aligner it was trained with")
        self._magnitudes = dict(state["magnitudes"])
        self.teacher_ref_fixed = bool(state["teacher_ref_fixed"])
        if self.aligner is not None:  # (a state written before it was kept: not known)
            self.aligner.tracked = state.get("plans_tracked")

    def snapshot(self) -> dict:
        """Copies of the running state a training forward updates (references, running plan, balancing magnitudes);
        small tensors, so cheap to take every step."""
        return {"buffers": {n: b.clone() for n, b in self.named_buffers()}, "magnitudes": dict(self._magnitudes)}

    def restore(self, snapshot: dict) -> None:
        for name, buffer in self.named_buffers():
            buffer.copy_(snapshot["buffers"][name])
        self._magnitudes = dict(snapshot["magnitudes"])
        if self.aligner is not None:
            self.aligner.reload_held()

    # ----------------------------------------------------------------------------------------------- weights
    def weights(self, progress: float) -> dict[str, float]:
        """Scheduled weight of each term group at training progress ``progress`` in [0, 1]."""
        if not 0 <= progress <= 1:  # (a step count in its place read as the schedules' end, a NaN as their start)
            raise DynaKDError(f"progress is the fraction of training done, in [0, 1], got {progress}")
        return term_weights(self.cfg, progress, hidden=self.hidden_term)

    def groups(self) -> tuple[str, ...]:
        """The term groups this distiller's method has (``weights`` gives 0 for those it lacks)."""
        return tuple(g for g, has in (("task", True), ("logit", self.cfg.terms["logit"]),
                                      ("feature", self.feature is not None), ("hidden", self.hidden_term)) if has)

    def term_names(self) -> tuple[str, ...]:
        """The terms a training step gives (``DistillOutput.terms``) where every group of the method is computed."""
        names = ["task"] + (["logit"] if self.cfg.terms["logit"] else [])
        if self.feature == "dynamics":
            names += [f"dyn/{c}" for c in self.opts.components] + (["hidden"] if self.hidden_term else [])
        elif self.feature is not None:
            names.append(self.feature)
        return tuple(names)

    def layer_terms_at(self, progress: float) -> bool:
        """Whether the layer terms (features, and ``hidden``) weigh anything at ``progress``: where they all weigh 0
        (the second stage of ``staged``, a warm-up's first step, ``beta: 0``) they are not computed, nor the models'
        hidden states captured for them; the aligner's running plan and the references then hold still."""
        return self._layer_terms_weigh(self.weights(progress))

    def _layer_terms_weigh(self, w: dict[str, float]) -> bool:
        return self.feature is not None and (w["feature"] > 0 or w.get("hidden", 0.0) > 0)

    @staticmethod
    def group(term: str) -> str:
        return term if term in ("task", "logit", "hidden") else "feature"

    def component_weight(self, term: str) -> float:
        return self.cfg.dynamics.weights.get(term.removeprefix("dyn/"), 1.0) if term.startswith("dyn/") else 1.0

    def dominance_note(self, term: str, value: float, task: float) -> str:
        """What to say of a term that adds ``value`` to the loss, many times the task term's ``task``: its gradient
        sets each step's direction (the more so under gradient clipping), and the task and logit terms barely move the
        student. On a pretrained pre-LN decoder (SmolLM2-135M, 30 -> 4 layers) the layer change's magnitude form did so
        from the first step: ``dyn/layer_change`` 1,248 (12,480 weighed by the feature weight, 10) against a task term
        of 0.91, where an encoder's terms are of the task term's size."""
        why = ""
        if term in ("dyn/layer_change", "dyn/sensitivity") and "magnitude" in self.opts.forms:
            why = ("; its magnitude form, a relative update size ||V|| / ||p||, is large where a model's layer outputs "
                   "grow by orders of magnitude with depth (a pre-LN decoder's: SmolLM2-135M's pooled states have "
                   "norm ~1 at the embeddings and ~1,500 from layer 12), and --set 'dynamics.forms=[direction]' "
                   "leaves that form out")
        remedy = "lower its weight (--beta, dynamics.weights)"
        if not self.cfg.balance:
            remedy = ("--set balance=true divides each term by its running size (then --beta 1 weighs them alike), "
                      f"or {remedy}")
        return (f"the term {term} adds {value:.4g} to the loss, {value / task:,.0f}x what the task term adds "
                f"({task:.3g}): it sets the direction of each step, and the other terms barely move the student{why}; "
                f"{remedy}")

    # ----------------------------------------------------------------------------------------------- forward
    def forward(
        self,
        student: Features,
        teacher: Features | None,
        labels: torch.Tensor,
        progress: float,
        perturbed: tuple[Features, Features] | None = None,
    ) -> DistillOutput:
        """The loss of one batch: ``student`` and ``teacher`` are the models' ``Features`` (``teacher`` None for
        ``task``), ``labels`` the batch's, ``progress`` in [0, 1]; ``perturbed``: both models' features of the noisy
        input (the input-sensitivity component)."""
        if labels is None:
            raise DynaKDError("the batch has no labels: the task term needs them (a 'labels' entry; rows only the "
                              f"teacher supervises carry {HIDDEN_LABEL}, or NaN for regression)")
        if teacher is None and self.cfg.method != "task":  # its teacher terms would silently be left out
            raise DynaKDError(f"method '{self.cfg.method}' compares the student with the teacher: pass the teacher's "
                              "features (capture(teacher, teacher_inputs)); only method 'task' trains without them")
        if not self._first_batch_checked:  # once: the models do not change
            self._check_outputs(student, teacher)
            self._check_labels(labels, student.logits.shape[-1])
        weights = self.weights(progress)
        layer_terms = teacher is not None and self._layer_terms_weigh(weights)
        if layer_terms:  # every batch (shapes only): capture(..., hidden=False) may come later
            self._check_depths(student, teacher)
        if teacher is not None and self.token_level:  # the masks' values once (a device sync), their shapes always
            self._check_same_tokens(student, teacher, values=not self._first_batch_checked)
        self._first_batch_checked = True
        if self.training and torch.is_grad_enabled():
            self._check_stepped()
        if (layer_terms and perturbed is None and self.feature == "dynamics"
                and "sensitivity" in self.opts.components):
            raise DynaKDError("the 'sensitivity' component needs both models' features of a perturbed input: pass "
                              "perturbed=(capture(student, batch, inputs_embeds=...), capture(teacher, ...)) with "
                              "embeddings from dynakd.features.perturbed_embeddings (the same seed, width and length "
                              "for both models; the student's perturbed forward from the random state of its clean "
                              "one, e.g. under torch.random.fork_rng, or dropout tells them apart; "
                              "DistillationTrainer does this)")
        terms = {"task": self.task_term(student, labels)}
        plan = None
        if teacher is not None and self.cfg.terms["logit"]:
            terms["logit"] = self.logit_term(student, teacher)
        if layer_terms:
            # Gram expansions lose too much in fp16/bf16: feature forms are always computed in float32.
            with torch.autocast(device_type=student.logits.device.type, enabled=False):
                feature_terms, plan = self.feature_terms(student, teacher, perturbed)
            terms.update(feature_terms)
        # a term weighing 0 is left out of the sum (still logged): 0 x a non-finite term would stop the run
        weighted = {k: weights[self.group(k)] * self.component_weight(k) * self.scale(k, v) for k, v in terms.items()
                    if weights[self.group(k)] * self.component_weight(k) != 0}
        # (nothing weighs anything: a loss of 0 to step on)
        loss = sum(weighted.values()) if weighted else 0.0 * terms["task"]
        return DistillOutput(loss=loss, terms=terms, weights=weights, plan=plan, weighted=weighted)

    def _check_stepped(self) -> None:
        """Say so, once, where the distiller's own parameters (``OWN_PARAMS``: projections, learned queries) have
        gradients but have not moved in ``STEPPED_BY`` training batches: an own loop's optimizer built over the
        student's parameters alone leaves them as they began, without a word (a DistillationTrainer refuses such an
        optimizer). At that batch alone, a device sync a parameter while they have not moved."""
        if self._own_params_at_start is None:
            return
        self._training_batches += 1
        if 1 < self._training_batches < STEPPED_BY:
            return
        own = [p for p in self.parameters() if p.requires_grad]
        if self._training_batches == 1:
            self._own_params_at_start = [p.detach().clone() for p in own] if own else None
            return
        start, self._own_params_at_start = self._own_params_at_start, None
        # (the distiller may have moved to another device since its first batch)
        if all(p.grad is not None for p in own) and all(torch.equal(p, q.to(p.device)) for p, q in zip(own, start)):
            distributed.note(f"the distiller's own parameters ({OWN_PARAMS}) have gradients but have not moved in "
                             f"{STEPPED_BY} training batches: give your optimizer list(student.parameters()) + "
                             "list(distiller.parameters())")

    def _check_outputs(self, s: Features, t: Features | None) -> None:
        """Outputs this distiller can compare: as many classes for both models, one output exactly when regressing
        (cross-entropy over one class is 0 whatever the model does, and a KL between [B, 1] and [B, 2] broadcasts)."""
        if self.qa:
            return
        s_out, t_out = s.logits.shape[-1], None if t is None else t.logits.shape[-1]
        if t_out is not None and t_out != s_out:
            raise DynaKDError(f"the teacher predicts {t_out} label(s) but the student {s_out}: give the student the "
                              "teacher's label count (num_labels)")
        if self.regression != (s_out == 1):
            raise DynaKDError(f"the models give {s_out} output(s) per row, but this Distiller was built with "
                              f"regression={self.regression}: " + ("a regression head has one output" if self.regression
                                                                   else "pass regression=True for a one-output head"))

    def _check_labels(self, labels: torch.Tensor, classes: int) -> None:
        """Class labels that are whole numbers (the task term would truncate 3.8 to class 3) and classes of the
        student's head, or hidden (an IndexError from the cross-entropy, on a GPU a device assert); a device sync,
        once."""
        if self.regression or self.qa:
            return
        if (bad := fraction(labels)) is not None:
            raise DynaKDError(f"the batch holds label {bad:g}, not a class, and this Distiller was built "
                              "with regression=False: pass regression=True for regression targets")
        outside = labels[((labels < 0) | (labels >= classes)) & (labels != HIDDEN_LABEL)]
        if outside.numel():
            raise DynaKDError(f"the batch holds label {outside[0].item():g}, but the models predict {classes} "
                              f"classes (0 to {classes - 1}; {HIDDEN_LABEL} for a row without one): give the models "
                              "the labels' count (num_labels), or number the labels from 0")

    def _check_same_tokens(self, s: Features, t: Features, *, values: bool) -> None:
        """Both models read the same positions (their attention masks agree), which token-level terms assume."""
        same = s.mask.shape == t.mask.shape and (not values or bool(torch.equal(s.mask, t.mask.to(s.mask.dtype))))
        if not same:
            masks = f"attention masks {tuple(t.mask.shape)} and {tuple(s.mask.shape)}" + (" differ" if values else "")
            raise DynaKDError(f"{self.token_level}, but the teacher's batch holds other tokens than the student's "
                              f"({masks}): both models must read one tokenisation")

    def _check_depths(self, s: Features, t: Features) -> None:
        """Features with as many layers and as wide as this distiller was built for (shapes only: no device sync)."""
        for who, feats, want in (("student", s, self.ref_s.shape), ("teacher", t, self.ref_t.shape)):
            if not feats.hidden and feats.pooled is None:
                raise DynaKDError(f"the {who}'s features hold no hidden states, which method '{self.cfg.method}' "
                                  "compares: capture(model, batch) with hidden=True")
            layers = feats.hidden or next(iter(feats.pooled.values()))  # L+1 x [B, T, d] live, [L+1, B, d] cached
            got = (len(layers), layers[0].shape[-1])
            if got != tuple(want):
                raise DynaKDError(f"the {who}'s features have {got[0] - 1} layers of width {got[1]}; this Distiller "
                                  f"was built for {want[0] - 1} of width {want[1]} ({who}_layers, {who}_width)")

    def task_term(self, student: Features, labels: torch.Tensor) -> torch.Tensor:
        if self.qa:  # labels [B, 2]: gold start and end positions
            return qa_task_loss(student.logits, labels, mask=student.mask)
        return task_loss(student.logits, labels, regression=self.regression, label_smoothing=self.label_smoothing)

    def logit_term(self, student: Features, teacher: Features) -> torch.Tensor:
        if self.qa:  # same tokenizer (checked), so both models see the same windows and padding
            return qa_logit_kd_loss(student.logits, teacher.logits, mask=student.mask, temperature=self.cfg.temperature)
        return logit_kd_loss(
            student.logits, teacher.logits, temperature=self.cfg.temperature, regression=self.regression
        )

    @property
    def magnitudes(self) -> dict[str, float]:
        """Term balancing's divisors: each term's running magnitude so far (empty without ``balance``)."""
        return dict(self._magnitudes)

    def scale(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """Term balancing (optional): divide by a running mean of the term's own magnitude."""
        if not self.cfg.balance:
            return value
        # The magnitude over all processes, so every process divides alike (and a checkpoint, which process 0 writes,
        # holds it). A non-finite one is left out: the process whose term it is stops the step and names the term,
        # and the others, their loss still finite, say that another process stopped.
        v = float(distributed.all_reduce_mean(value.detach().abs().float())) if self.training else math.nan
        if math.isfinite(v) and name in self._magnitudes:
            self._magnitudes[name] = 0.99 * self._magnitudes[name] + 0.01 * v
        elif math.isfinite(v) and v > 0:  # starts at the first non-zero value: a term that is 0 at first (the task
            self._magnitudes[name] = v  # loss of a batch of transfer rows, hidden labels only) would then be / 0.01 v
        return value / max(self._magnitudes.get(name, 1.0), 1e-8)

    def feature_terms(self, s: Features, t: Features, perturbed) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        if self.feature == "dynamics":
            costs = self.dynamics_costs(s, t, perturbed, self._ahead())
            total = sum(self.cfg.dynamics.weights.get(k, 1.0) * cost_value(c) for k, c in costs.items())
            plan = self._plan(total)
            terms = {f"dyn/{k}": plan_loss(plan, c) for k, c in costs.items()}
            if self.hidden_term:  # the dynamics' plan places it too; pairs the plan leaves out are not computed
                needed = plan.detach() > 0
                terms["hidden"] = plan_loss(plan, hidden_mse_costs(s.hidden, t.hidden, mask=s.mask, needed=needed,
                                                                   projections=self.projections))
            return terms, plan
        needed = torch.ones_like(self.aligner.running_plan, dtype=torch.bool)
        if hasattr(self.aligner, "fixed"):
            needed = self.aligner.fixed > 0
        if self.feature == "static":
            cost = hidden_mse_costs(s.hidden, t.hidden, mask=s.mask, needed=needed, projections=self.projections)
        elif self.feature == "pkd":
            cost = pkd_costs(s.class_tokens(), t.class_tokens(), needed=needed, projections=self.projections)
        else:  # a layer term named in config.METHOD_TERMS needs its branch here
            raise ValueError(f"no layer term named {self.feature!r}")
        plan = self._plan(cost)
        return {self.feature: plan_loss(plan, cost)}, plan

    def _plan(self, cost: torch.Tensor) -> torch.Tensor:
        """The aligner's plan from ``cost``, averaged over processes first unless none is read (a held plan, the same
        on all). Costs of gathered features are averaged too, one all-reduce of ``[Ls, Lt]``: they are alike only to
        the kernels' rounding, which may differ by process (torch.compile's autotuning), and the running plans would
        drift apart."""
        alike = self.aligner.ahead() is not None
        return self.aligner(cost if alike else distributed.synced_cost(cost))

    @property
    def plan_first(self) -> bool:
        """Whether token groups' costs wait for the plan (``dynamics.plan_first``, losses/planfirst.py): where the
        aligner's plan takes no gradient from them (asked each step: OT's ``plan_grad`` may change)."""
        return self.cfg.dynamics.plan_first and self.aligner is not None and not self.aligner.cost_gradient

    @property
    def stacks_teacher(self) -> bool:
        """Whether a step may hand the teacher's hidden states stacked as scratch (``features.stack_hidden``):
        token-level dynamics read them so, and nothing reads them after the costs (``hidden_weight`` would); not
        compiled (a tuple of its own would be one more thing for torch.compile to guard on)."""
        return (self.feature == "dynamics" and self.opts.pooling == "tokens" and not self.hidden_term
                and not self.cfg.torch_compile)

    def ready_teacher(self, t: Features) -> Features:
        """The live teacher's ``t`` as the costs will read it, made as soon as it is captured: its states stacked once
        as scratch where token-level dynamics read them (``stacks_teacher``: one copy of them, not two), pooled and let
        go where pooled dynamics do (``pooled_teacher``), else as they are (no states captured, or read as they are).
        ``DistillationTrainer`` calls it between the teacher's forward and the student's."""
        if t.hidden and self.stacks_teacher:  # (a sample of the tokens: those alone, drawn here for the costs too)
            sampled = self.training and self.cfg.dynamics.token_sample is not None
            stack_hidden(t, scratch=True, tokens=self._tokens(self.dynamics_masks(t, t)[0]) if sampled else None)
            return t
        return self.pooled_teacher(t)

    def pooled_teacher(self, t: Features) -> Features:
        """The live teacher's ``t`` with its hidden states pooled as the dynamics read them, and let go: as the teacher
        cache gives them (``Features.pooled``), where nothing reads the states themselves (pooled dynamics, no
        token-level term). ``DistillationTrainer`` runs the teacher before the student and pools at once, so the
        teacher's token states never sit beside the student's activations (a live ``full`` step held them to its
        loss: 1.15x ``kd``'s peak on one H200, benchmarks/speed/RESULTS.md). ``t`` itself where they are read."""
        if self.feature != "dynamics" or self.token_level or not t.hidden:
            return t
        with torch.autocast(device_type=t.logits.device.type, enabled=False):  # (float32, as forward's features)
            x = pool(t.hidden, t.mask, self.opts.pooling, t.cls_index)[0].squeeze(1)  # [L+1, B, d]
        return Features(logits=t.logits, hidden=(), mask=None, pooled={self.opts.pooling: x}, context=t.context)

    @property
    def gathers(self) -> bool:
        """Whether batch forms see the features of every process (``dynamics.gather`` in a multi-process run)."""
        return self.cfg.dynamics.gather and self.opts.pooling != "tokens" and distributed.world_size() > 1

    def _ahead(self) -> tuple[torch.Tensor, dict[str, float]] | None:
        """This batch's plan where the aligner knows it before the costs (``Aligner.ahead``: a fixed map, a held plan),
        with the weights of the dynamics' components relative to each other in the loss (``dynamics.weights``): token
        costs in windows then take their gradient in the same pass as their values (``grams.windowed_costs``). None
        under term balancing, whose divisors come from the values."""
        if not self.plan_first or self.opts.pooling != "tokens" or self.cfg.balance:
            return None
        plan = self.aligner.ahead()
        return None if plan is None else (plan, {k: self.component_weight(f"dyn/{k}") for k in self.opts.components})

    def dynamics_costs(self, s: Features, t: Features, perturbed,
                       ahead: tuple[torch.Tensor, dict[str, float]] | None = None
                       ) -> dict[str, torch.Tensor | PlanFirst]:
        refs = self.references(s, t) if self.cfg.dynamics.reference != "batch" else None
        # the perturbed captures' hidden states alone: their logits are not a decoder's (capture, inputs_embeds)
        pert = (perturbed[0].hidden, perturbed[1].hidden) if perturbed is not None else None
        s_mask, t_mask = self.dynamics_masks(s, t)
        anchors = anchors_from_plan(self.aligner.running_plan)
        inputs = dict(mask=s_mask, teacher_mask=t_mask, opts=self.opts, perturbed=pert,
                      teacher_pooled=t.pooled_layers(self.opts.pooling),
                      gather=distributed.gather_items if self.gathers else None, cls_index=s.cls_index,
                      teacher_cls_index=t.cls_index)
        if isinstance(t.hidden, StackedHidden) and t.hidden.tokens is not None:  # (drawn by ready_teacher)
            inputs["tokens"] = t.hidden.tokens
        else:
            inputs["tokens"] = self._tokens(s_mask)
        if self.graphed is not None:
            return self.graphed(pool_features(s.hidden, t.hidden, **inputs), anchors, refs)
        if self._compiled is not None:
            return self._compiled(s.hidden, t.hidden, anchors=anchors, refs=refs, **inputs)
        # dynamics_costs's two halves: the teacher's states stacked as scratch are held by the pooled features alone
        # (a call's arguments live as long as the call), which the costs let go once they have made what they need
        return pooled_costs(pool_features(s.hidden, _taken_if_scratch(t), **inputs), self.opts, anchors, refs,
                            self.plan_first, ahead)

    def _tokens(self, mask: torch.Tensor | None) -> torch.Tensor | None:
        """The positions of each row the token-level costs compare in training (``dynamics.token_sample``: a sample
        of those ``mask`` marks), or None: every token."""
        if not self.training or self.cfg.dynamics.token_sample is None:  # (token-level: config checks)
            return None
        return sample_tokens(mask, self.cfg.dynamics.token_sample)

    def dynamics_masks(self, s: Features, t: Features) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The tokens the dynamics see: the attention masks (padding never counts) or, for extractive QA with
        ``dynamics.qa_tokens: context``, only the context tokens of each window (question and special tokens out)."""
        if not (self.qa and self.cfg.dynamics.qa_tokens == "context"):
            return s.mask, t.mask
        if s.context is None:  # (the dynamics used to see every token without a word)
            raise DynaKDError("dynamics.qa_tokens 'context' needs the batch's context_mask (a column of DynaKD's "
                              "SQuAD windows): keep it in the batch that split_inputs and capture read, or set "
                              "qa_tokens 'all'")
        s_ctx = s.context.to(s.mask.dtype) * s.mask  # [B, T]
        t_ctx = t.context.to(t.mask.dtype) * t.mask if t.context is not None and t.mask is not None else None
        return s_ctx, t_ctx

    # ----------------------------------------------------------------------------------------------- references
    def set_dataset_reference(self, teacher_mean: torch.Tensor) -> None:
        """The teacher's exact training-set mean ``[Lt+1, d_t]`` of pooled features (the ``dataset`` reference)."""
        self.ref_t.copy_(teacher_mean)
        self.teacher_ref_fixed = True

    @torch.no_grad()
    def references(self, s: Features, t: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """Running means (EMA, never back-propagated) of the pooled features; updated in training mode only.

        In a multi-process run the batch means are taken over every process's items, so the references stay equal
        on all processes.
        """
        if self.cfg.dynamics.reference == "dataset" and not self.teacher_ref_fixed:  # else ref_t would be an EMA
            raise DynaKDError("dynamics.reference 'dataset' needs the teacher's training-set mean: call "
                              "distiller.set_dataset_reference(mean) first (pooled features [Lt+1, d]; "
                              "dynakd.cache.live_dataset_mean computes it in one teacher pass, dynakd.distill does it "
                              "for you)")
        s_mask, t_mask = self.dynamics_masks(s, t)
        mean_s = masked_layer_mean(*pool([h.detach() for h in s.hidden], s_mask, self.opts.pooling, s.cls_index))
        cached = t.pooled_layers(self.opts.pooling)
        if cached is not None:
            x = cached.float().unsqueeze(1)  # [Lt+1, 1, B, d]
            mean_t = masked_layer_mean(x, torch.ones(x.shape[1:3], dtype=torch.bool, device=x.device))
        else:
            mean_t = masked_layer_mean(*pool(t.hidden, t_mask, self.opts.pooling, t.cls_index))
        if self.training:
            first = int(self.ref_steps) == 0
            mom = 0.0 if first else self.cfg.dynamics.ema_momentum
            self.ref_s.mul_(mom).add_(mean_s, alpha=1 - mom)
            if not self.teacher_ref_fixed:
                self.ref_t.mul_(mom).add_(mean_t, alpha=1 - mom)
            self.ref_steps += 1
        return self.ref_s.clone(), self.ref_t.clone()


def _taken_if_scratch(feats: Features) -> Hidden:
    """``feats.hidden``, taken out of ``feats`` where they were stacked as scratch (``features.stack_hidden``): the
    costs let them go once they have made what they need of them (``pooled_costs``)."""
    hidden = feats.hidden
    if isinstance(hidden, StackedHidden) and hidden.scratch:
        feats.hidden = ()
    return hidden


def masked_layer_mean(x: torch.Tensor, gmask: torch.Tensor) -> torch.Tensor:
    """Mean over the valid items of pooled features ``x [L+1, G, N, d]`` of every process: ``[L+1, d]``."""
    m = gmask.to(x.dtype)[..., None]
    total, count = distributed.all_reduce_sum((x * m).sum((1, 2))), distributed.all_reduce_sum(m.sum())
    return total / count.clamp_min(1.0)


def token_level(cfg: DistillConfig, qa: bool = False) -> str | None:
    """What in ``cfg`` compares the two models position by position (so both must read the same tokens), or None."""
    feature = cfg.terms["feature"]
    if qa and cfg.method != "task":
        return "extractive QA distils start/end logits token by token"
    if feature == "static":
        return "method 'static' compares hidden states token by token"
    if cfg.hidden_weight is not None:  # (validation allows it with a dynamics method only)
        return "hidden_weight compares hidden states token by token"
    if feature == "dynamics" and cfg.dynamics.pooling == "tokens":
        return "dynamics.pooling 'tokens' compares the models token by token"
    if feature == "dynamics" and "sensitivity" in cfg.dynamics.components:
        return "the 'sensitivity' component perturbs both models' embeddings token by token"
    return None


def check_task(cfg: DistillConfig, regression: bool, qa: bool) -> None:
    """``qa`` and ``regression`` as the config's task says (the task's defaults, such as QA's pooling by token, follow
    ``cfg.task``); a csv or json task is regression or not by its files, so either is taken."""
    task = get_task(cfg.task)
    if qa != task.is_qa:
        raise DynaKDError(f"Distiller(qa=True) needs a config of an extractive QA task (task: squad), not "
                          f"{cfg.task}" if qa else f"the config's task {cfg.task} is extractive QA: pass qa=True")
    if not task.is_user_data and regression != task.is_regression:
        raise DynaKDError(f"Distiller(regression=True) needs a config of a regression task (task: stsb, or csv/json "
                          f"files of decimal labels), not {cfg.task}" if regression else
                          f"the config's task {cfg.task} is regression: pass regression=True")


def across_tokenizers(qa: bool) -> str:
    """What works where the two models tokenize differently: said with each refusal of what does not."""
    shared = ("a student that shares the teacher's tokenizer (one built from its layers: --student-layers K, "
              "build_student(teacher, K))")
    if qa:  # (every method but task compares start and end logits token by token)
        return f"teacher and student must share a tokenizer; use {shared}"
    return ("teacher and student must share a tokenizer; across two, use method kd, pkd, dynamics or full with "
            f"pooled dynamics (the components deviation, layer_change, relations), or {shared}")


def check_compatible(cfg: DistillConfig, same_tokenizer: bool, qa: bool = False) -> None:
    """Refuse combinations that need token-aligned inputs when the two models tokenise differently."""
    if not same_tokenizer and (reason := token_level(cfg, qa)):
        raise DynaKDError(f"{reason}: {across_tokenizers(qa)}")


def _check_own_aligner(aligner, cfg: DistillConfig, feature: str | None, student_layers: int,
                       teacher_layers: int) -> None:
    """An aligner of one's own (``Distiller(aligner=...)``) where the method reads one, built for these depths."""
    if not isinstance(aligner, Aligner):
        raise DynaKDError(f"aligner= takes an instance of dynakd.align.Aligner (its plan(cost) method), got "
                          f"{type(aligner).__name__}")
    if feature is None:
        raise DynaKDError(f"method '{cfg.method}' compares no layers, so it reads no aligner: leave aligner= out")
    if (aligner.n_student, aligner.n_teacher) != (student_layers, teacher_layers):
        raise DynaKDError(f"the aligner was built for {aligner.n_student} student and {aligner.n_teacher} teacher "
                          f"layers; this Distiller has {student_layers} and {teacher_layers}")
