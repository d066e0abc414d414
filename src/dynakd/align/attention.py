"""Soft alignment by attention of each student layer over all teacher layers.

Reference: ALP-KD (Passban et al. 2021): ``a_mk = softmax_k(score(m, k))``. Parameter-free scores are the negated
normalised costs; the learned variant adds a trainable logit per (student, teacher) pair, a query per student layer.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Aligner, normalise_cost


class AttentionAligner(Aligner):
    name = "attention"
    cost_gradient = False  # (the scores read the cost detached; a learned query takes its own gradient)

    def __init__(self, n_student: int, n_teacher: int, tau: float = 0.1, learned: bool = False, momentum: float = 0.9,
                 plan_every: int = 1):
        if learned and plan_every > 1:  # (a held plan is detached: the query would learn in one batch of N)
            raise ValueError("a learned attention aligner takes its gradient through each batch's plan: plan_every "
                             "must be 1")
        super().__init__(n_student, n_teacher, momentum, plan_every)
        self.tau = tau
        self.query = nn.Parameter(torch.zeros(n_student, n_teacher)) if learned else None

    def plan(self, cost: torch.Tensor) -> torch.Tensor:
        scores = -normalise_cost(cost.detach()) / self.tau  # [Ls, Lt]
        if self.query is not None:
            scores = scores + self.query.to(scores)
        return torch.softmax(scores, dim=-1)
