"""Soft alignment by attention of each student layer over all teacher layers.

Reference: ALP-KD (Passban et al. 2021): ``a_mk = softmax_k(score(m, k))``. Parameter-free scores are the negated
normalised costs; the learned variant adds a trainable logit per (student, teacher) pair, a query per student layer.

A row-wise softmax follows whichever teacher layers are cheapest for every student layer alike (the early ones, on
real costs: benchmarks/maps-L2). Two options counter it: the order prior OT has (``|m/Ls - l/Lt|`` added to the
costs), and ``relative`` costs, each teacher layer's cost less its mean over the student layers, so that a row
compares how much better a teacher layer suits this student layer than the others (the column offsets that OT's
teacher marginals absorb into their potential, at convergence). With two student layers the relative costs are
``±(C[0] - C[1]) / 2``, so the two rows rank the teacher layers in opposite orders.

``prior`` is the config's ``align.order_prior`` (the same keyword as ``OTAligner``'s); ``relative`` needs two student
layers or more (a ``ValueError``; a ``Distiller`` says so as a ``DynaKDError``).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Aligner, normalise_cost, options_said


class AttentionAligner(Aligner):
    """Each student layer's row: ``softmax(-C / tau)`` over the costs divided by their mean (``C``), with ``relative``
    each teacher layer's cost less its mean over the student layers first, then ``prior * |m/Ls - l/Lt|`` added
    (``prior``: the config's ``align.order_prior``, >= 0); ``learned`` adds a trainable logit per layer pair. See the
    module's docstring for why the two options exist."""

    name = "attention"
    cost_gradient = False  # (the scores read the cost detached; a learned query takes its own gradient)

    def __init__(self, n_student: int, n_teacher: int, tau: float = 0.1, learned: bool = False, momentum: float = 0.9,
                 plan_every: int = 1, prior: float = 0.0, relative: bool = False):
        if learned and plan_every > 1:  # (a held plan is detached: the query would learn in one batch of N)
            raise ValueError("a learned attention aligner takes its gradient through each batch's plan: plan_every "
                             "must be 1")
        if prior < 0:
            raise ValueError(f"the order prior must be >= 0, got {prior}")
        if relative and n_student < 2:  # (one row less its own mean is all zeros: a uniform plan whatever the costs)
            raise ValueError("relative attention compares student layers with each other: it needs a student of 2 "
                             "layers or more")
        super().__init__(n_student, n_teacher, momentum, plan_every)
        self.tau, self.relative = tau, relative
        self.keep_order_prior(prior)
        self.described = options_said(relative, prior)  # (its picture's and alignment.json's)
        self.query = nn.Parameter(torch.zeros(n_student, n_teacher)) if learned else None

    def plan(self, cost: torch.Tensor) -> torch.Tensor:
        c = normalise_cost(cost.detach())  # [Ls, Lt]
        if self.relative:
            c = c - c.mean(0, keepdim=True)
        if self.prior_cost is not None:
            c = c + self.prior_cost
        scores = -c / self.tau
        if self.query is not None:
            scores = scores + self.query.to(scores)
        return torch.softmax(scores, dim=-1)
