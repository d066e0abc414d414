"""Common aligner behaviour: cost matrix ``[Ls, Lt]`` in, plan ``[Ls, Lt]`` (rows sum to 1) out."""

from __future__ import annotations

import math

import torch
from torch import nn


def normalise_cost(cost: torch.Tensor) -> torch.Tensor:
    """Divide by the mean entry so temperatures and entropic ``eps`` do not depend on the loss scale (whatever it
    is: a floor of 1e-8 left costs below it unscaled, as if eps and tau were ~1e8 times larger)."""
    return cost / cost.mean().clamp_min(torch.finfo(cost.dtype).tiny)


def order_prior(n_student: int, n_teacher: int, device=None) -> torch.Tensor:
    """``|m / Ls - l / Lt|`` for 1-based layers: early student layers prefer early teacher layers."""
    m = torch.arange(1, n_student + 1, device=device, dtype=torch.float32)[:, None] / n_student
    ell = torch.arange(1, n_teacher + 1, device=device, dtype=torch.float32)[None, :] / n_teacher
    return (m - ell).abs()


def options_said(relative: bool = False, prior: float = 0.0) -> str | None:
    """What moves a plan away from the costs alone, in words (the heatmap's title, ``alignment.json``'s
    ``settings``, the model card): attention's relative costs, the order prior; None without either."""
    said = (["costs relative to each teacher layer's mean over the student layers"] if relative else []) + (
        [f"order prior {prior:g}"] if prior else [])
    return ", ".join(said) or None


class Aligner(nn.Module):
    """Base class. Subclasses implement ``plan(cost)``; ``forward`` also tracks a running plan for display.

    ``running_plan`` is an exponential average of the plans seen in training (the artefact saved as
    ``alignment.json``); it also supplies the anchors of the layer-change component.
    """

    name: str | None = None  # the config's name of a built-in aligner; a class of your own is recorded by its own
    # Keep the running state (the running plan, OT's potential) from a plan that is not finite: a custom loop may skip
    # such a step and go on. DistillationTrainer turns it off: it restores the state itself and stops (a few operators
    # a step saved).
    keep_finite: bool = True
    # Whether the plan takes a gradient from the cost. Where it does not, token-level dynamics compare the forms under
    # the plan, a smaller backward (losses/planfirst.py): its cost comes without gradient. An aligner of one's own
    # whose plan reads the cost detached (or not at all) can say False; one that subclasses the attention or fixed
    # aligner (False) and reads the cost with its gradient must say True.
    cost_gradient: bool = True

    def __init__(self, n_student: int, n_teacher: int, momentum: float = 0.9, plan_every: int = 1):
        super().__init__()
        self.n_student, self.n_teacher, self.momentum = n_student, n_teacher, momentum
        self.register_buffer("running_plan", uniform_plan(n_student, n_teacher))
        if plan_every < 1:
            raise ValueError(f"plan_every must be >= 1, got {plan_every}")
        self.plan_every = plan_every
        self._held_for = 0  # training batches the held plan has served (0: none yet); ``held_for`` in checkpoints
        # plans the running plan has taken in (the distiller's extra state keeps it; None: from a checkpoint written
        # before it was kept), so that its picture can say how much of the starting map it still holds
        self.tracked: int | None = 0
        if plan_every > 1:  # (buffers only then: the state of every other aligner stays as it was)
            self.register_buffer("held_plan", uniform_plan(n_student, n_teacher))
            self.register_buffer("held_for", torch.zeros((), dtype=torch.long))

    def keep_order_prior(self, prior: float) -> None:
        """``prior * |m/Ls - l/Lt|`` (``prior_cost``), computed once for the costs of every step: a buffer that follows
        the aligner's device and is not in its checkpoints; None for no prior."""
        self.prior = prior
        self.register_buffer("prior_cost", prior * order_prior(self.n_student, self.n_teacher) if prior else None,
                             persistent=False)

    def plan(self, cost: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, cost: torch.Tensor) -> torch.Tensor:
        held = self.ahead()
        if held is not None:  # (the cost is not read: the plan was computed from an earlier batch's)
            self._count_held(self._held_for + 1)
            return held
        p = self.plan(cost)
        if self.training:
            self.track(p)
            if self.plan_every > 1:
                self.hold(p)
        return p

    def ahead(self) -> torch.Tensor | None:
        """The plan of the next training batch where it is known before its costs, else None. With ``plan_every``
        N > 1 a plan computed from one batch's costs is held for the next N - 1 training batches (not in eval mode),
        and ``forward`` returns it without reading their costs: token-level dynamics computed in windows then take one
        pass instead of two (``grams.windowed_costs``), and OT's host loop runs once in N batches."""
        if self.training and 0 < self._held_for < self.plan_every:
            return self.held_plan
        return None

    def hold(self, p: torch.Tensor) -> None:
        """Hold plan ``p`` for the next ``plan_every - 1`` training batches (``ahead``). A new tensor, not the old one
        overwritten: a loop that back-propagates several batches at once still holds the plan each of them read.
        With ``keep_finite`` a plan that is not finite is not held (one host sync in N batches): the next batch
        computes its own, as a custom loop that skips the step expects."""
        step = p.detach().to(self.held_plan, copy=True)
        if self.keep_finite and not bool(step.isfinite().all()):
            self._count_held(0)
            return
        self.held_plan = step
        self._count_held(1)

    def _count_held(self, n: int) -> None:
        self._held_for = n
        self.held_for.fill_(n)  # (the checkpoint's copy; written, never read in a step: no host sync)

    def reload_held(self) -> None:
        """Read the held plan's count back from its buffer, after the buffers were restored or loaded."""
        if self.plan_every > 1:
            self._held_for = int(self.held_for)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.reload_held()

    def track(self, p: torch.Tensor) -> None:
        """Move the running plan towards ``p``."""
        if self.tracked is not None:
            self.tracked += 1
        with torch.no_grad():
            step = p.detach().to(self.running_plan)
            if not self.keep_finite:
                self.running_plan.mul_(self.momentum).add_(step, alpha=1 - self.momentum)
                return
            new = self.running_plan.mul(self.momentum).add_(step, alpha=1 - self.momentum)
            self.running_plan.copy_(torch.where(new.isfinite(), new, self.running_plan))


def uniform_map(n_student: int, n_teacher: int) -> list[int]:
    """Teacher layer ``round(m * Lt / Ls)`` (halves round up) of each student layer ``m``; 1-based (TinyBERT)."""
    return [max(1, math.floor(m * n_teacher / n_student + 0.5)) for m in range(1, n_student + 1)]


def uniform_plan(n_student: int, n_teacher: int) -> torch.Tensor:
    """One-hot plan of ``uniform_map``."""
    return one_hot_plan(uniform_map(n_student, n_teacher), n_teacher)


def one_hot_plan(teacher_layers: list[int], n_teacher: int) -> torch.Tensor:
    """Plan with row ``m`` on teacher layer ``teacher_layers[m]`` (1-based)."""
    plan = torch.zeros(len(teacher_layers), n_teacher)
    for m, ell in enumerate(teacher_layers):
        plan[m, ell - 1] = 1.0
    return plan
