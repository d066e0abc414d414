"""Costs whose comparison waits for the plan: what keeps token-level dynamics' backward small.

A component's cost ``C [Ls, Lt]`` compares each student form ``a_m`` with every teacher form ``b_l``
(``forms.layer_costs``; ``paired_costs`` for the layer change, whose teacher side depends on the student step).
Back-propagated as a matrix, it keeps what its gradient reads for every pair: the teacher's forms ``[Lt, K]``, and for
the layer change the differences ``[Ls, Lt, K]`` (token groups, a 12-layer teacher, 32 windows of 384 tokens: 216 MiB
a student step). A step's loss reads the costs only through the plan, ``plan_loss = sum_ml P_ml C_ml / Ls``, and
where the plan takes no gradient from the costs (``Aligner.cost_gradient``: every built-in aligner but OT with
``plan_grad``), the gradient of that sum to the student's forms reads the teacher's forms only summed under the plan,
``W = P / Ls``:

- ``mse``, ``C_ml = |a_m - b_ml|^2 / n``: ``2 (w_m a_m - B_m) / n``, with ``w_m = sum_l W_ml`` and
  ``B_m = sum_l W_ml b_ml``;
- ``cosine``, ``C_ml = 1 - a_m . b_ml / (|a_m| |b_ml|)``: the gradient of ``-a_m . B_m / |a_m|``, with
  ``B_m = sum_l W_ml b_ml / |b_ml|`` (forms of norm 0 aside, whose gradient ``layer_costs`` scales by ``1 / EPS``).

So a ``PlanFirst`` cost holds the values without gradient (the aligner reads them, the logs show them), the
student's forms, and the teacher's until the plan: ``plan_loss`` (below) adds to the plan-weighted values a term of
value 0 whose gradient is the above, from ``B [Ls, K]`` per form, which ``weigh`` sums. The forward holds what it held
(the teacher's forms where the tensor costs hold the differences from the student's, the same size; no form is built
twice), and the backward keeps ``[Ls, K]`` per form where it kept ``[Lt, K]`` and ``[Ls, Lt, K]``. The costs and
gradients are those of the tensors to rounding (``tests/unit/test_plan_first.py``, and against the forms' vectors
``tests/unit/test_unmasked_forms.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from . import forms as F


class PlanFirst:
    """A cost ``[Ls, Lt]`` whose gradient is taken under the plan (the module's docstring): ``value`` without
    gradient; ``student``, the student's forms compared (``[Ls, *S]`` each, with gradient), ``counts`` their valid
    cells; ``weigh(W)`` the teacher's forms summed under weights ``W [Ls, Lt]`` (``forms.weighed``), one ``[Ls, K]``
    per form. ``extra``: a cost tensor added to it (``+``; the relations' angle form), back-propagated as
    ``plan_loss`` does a tensor. One ``plan_loss`` uses it up: the teacher's forms go with ``weigh``."""

    def __init__(self, value: torch.Tensor, student: list[torch.Tensor], counts: list, distance: str,
                 weigh: Callable[[torch.Tensor], list[torch.Tensor]], extra: torch.Tensor | None = None):
        self.value, self.student, self.counts, self.distance = value, student, counts, distance
        self.weigh, self.extra = weigh, extra

    def __add__(self, other: torch.Tensor) -> PlanFirst:
        out = copy.copy(self)  # (a Windowed cost too)
        out.value, out.extra = self.value + other.detach(), other if self.extra is None else self.extra + other
        return out

    def surrogate(self, plan: torch.Tensor) -> torch.Tensor:
        """A scalar of value 0 whose gradient is that of ``plan_loss(plan, cost)`` to the student's side (the plan
        itself takes its gradient from ``value``, in ``plan_loss``)."""
        if self.weigh is None:
            raise ValueError("this PlanFirst cost was used up by an earlier plan_loss, which summed the teacher's "
                             "forms under its plan: compute the costs again")
        weights = self._weights(plan)
        with torch.no_grad():
            summed = self.weigh(weights)
        self.weigh = None  # (the teacher's forms it held go now, before the backward)
        rows = weights.sum(1)
        terms = [F.plan_surrogate(a, b, rows, n, distance=self.distance)
                 for a, b, n in zip(self.student, summed, self.counts)]
        return self._plus_extra(sum(terms[1:], terms[0]), weights)

    def _weights(self, plan: torch.Tensor) -> torch.Tensor:
        """``W = P / Ls``, without gradient."""
        return plan.detach().to(self.value.dtype) / self.value.shape[0]

    def _plus_extra(self, term: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``term`` plus, where a cost tensor was added (``extra``), a zero whose gradient is ``sum W extra``'s."""
        if self.extra is None:
            return term
        extra = (weights * self.extra).sum()
        return term + (extra - extra.detach())


def cost_value(cost: torch.Tensor | PlanFirst) -> torch.Tensor:
    """A cost's values ``[Ls, Lt]``: the tensor itself, or a ``PlanFirst``'s (without gradient)."""
    return cost.value if isinstance(cost, PlanFirst) else cost


def plan_loss(plan: torch.Tensor, cost: torch.Tensor | PlanFirst) -> torch.Tensor:
    """``mean_m sum_l P[m, l] cost[m, l]``; a ``PlanFirst`` cost takes its gradient under ``plan`` (and is used up)."""
    value = cost_value(cost)
    if plan.shape != value.shape:  # (shapes only: broadcast, a [1, Lt] cost under an [Ls, Lt] plan gave a number)
        raise ValueError(f"plan {list(plan.shape)} and cost {list(value.shape)} differ in shape: both are [Ls, Lt]")
    loss = (plan.to(value.dtype) * value).sum() / value.shape[0]
    return loss + cost.surrogate(plan) if isinstance(cost, PlanFirst) else loss


class Windowed(PlanFirst):
    """A ``PlanFirst`` cost computed a few windows at a time (``grams.windowed_costs``): ``value`` now; the gradient
    under the plan in the backward, chunk by chunk, for every component at once (``grams.Windows``), through
    ``term``, a zero whose gradient is this component's weight in the loss."""

    def __init__(self, value: torch.Tensor, term: torch.Tensor, windows, extra: torch.Tensor | None = None):
        self.value, self.term, self.windows, self.extra = value, term, windows, extra

    def surrogate(self, plan: torch.Tensor) -> torch.Tensor:
        self.windows.take_plan(plan)
        return self._plus_extra(self.term, self._weights(plan))
