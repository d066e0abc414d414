"""Alignment by entropic optimal transport between student and teacher layers.

Reference: Cuturi 2013 (Sinkhorn distances), in log space for stability; BERT-EMD (Li et al. 2020) for layer-set
transport. Without gradient (the default) solved on the host (numpy, float64); with ``plan_grad`` in torch.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .base import Aligner, normalise_cost, options_said


def sinkhorn(cost: torch.Tensor, eps: float = 0.05, iters: int = 50, g: torch.Tensor | None = None) -> torch.Tensor:
    """Transport plan ``[Ls, Lt]`` with uniform marginals: rows sum to 1/Ls exactly, columns to 1/Lt at convergence.

    50 iterations by default, close to convergence from a cold start; training's aligner runs ``align.iters`` (20),
    warm-started from the last step's potential (benchmarks/speed/RESULTS.md: ~1% from the converged plan for 2-3
    student layers; ~3% at 6 x 12, docs/method.md).

    ``g`` (the teacher-side dual potential ``[Lt]`` divided by ``eps``, as the log domain holds it) warm-starts the
    iterations; see ``sinkhorn_dual``.
    """
    return sinkhorn_dual(cost, eps, iters, g)[0]


def sinkhorn_dual(
    cost: torch.Tensor, eps: float = 0.05, iters: int = 50, g: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The plan and the final teacher-side potential (to warm-start the next call on a similar cost).

    Without gradient the matrix (a few layers by a few layers) is solved on the host in float64 with numpy: each of
    the loop's ~6 operators per iteration costs a microsecond there, against torch's per-operator dispatch (~15 us on
    CPU) or a kernel launch each on a GPU, where the one device-to-host copy replaces ~120 launches per step. With
    gradient (``plan_grad``) the same loop runs in torch.
    """
    if cost.dim() != 2:
        raise ValueError(f"the cost is a matrix [Ls, Lt] (student layers by teacher layers), got {list(cost.shape)}")
    n_s, n_t = cost.shape
    if cost.requires_grad:
        xp, lse = torch, torch.logsumexp
        log_k = -cost.float() / eps
        g = torch.zeros(n_t, device=cost.device) if g is None else g.to(cost.device, torch.float32)
    else:
        xp, lse = np, _logsumexp
        log_k = -cost.detach().cpu().double().numpy() / eps
        g = np.zeros(n_t) if g is None else g.detach().cpu().double().numpy()
    log_a, log_b = -math.log(n_s), -math.log(n_t)  # uniform marginals
    f = log_a - lse(log_k + g[None, :], 1)
    for _ in range(iters):  # the row update comes last, so rows are exact and columns converge
        g = log_b - lse(log_k + f[:, None], 0)
        f = log_a - lse(log_k + g[None, :], 1)
    plan = xp.exp(log_k + f[:, None] + g[None, :])
    if xp is np:
        plan, g = (torch.from_numpy(x).to(cost.device, torch.float32) for x in (plan, g))
    return plan, g


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    """numpy's log-sum-exp along one axis (scipy's adds tens of microseconds of argument checks per call)."""
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


class OTAligner(Aligner):
    name = "ot"

    def __init__(
        self,
        n_student: int,
        n_teacher: int,
        eps: float = 0.05,
        iters: int = 20,
        prior: float = 0.0,
        plan_grad: bool = False,
        momentum: float = 0.9,
        plan_every: int = 1,
    ):
        if plan_grad and plan_every > 1:  # (a held plan is detached)
            raise ValueError("plan_grad takes the gradient through each batch's plan: plan_every must be 1")
        super().__init__(n_student, n_teacher, momentum, plan_every)
        self.eps, self.iters, self.plan_grad = eps, iters, plan_grad
        self.keep_order_prior(prior)
        self.described = options_said(prior=prior)  # (its picture's and alignment.json's)
        # The costs move slowly from step to step, so the last step's potential is a close starting point (warm start).
        self.register_buffer("potential", torch.zeros(n_teacher))

    @property
    def cost_gradient(self) -> bool:
        return self.plan_grad

    def plan(self, cost: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(self.plan_grad and torch.is_grad_enabled()):
            c = normalise_cost(cost if self.plan_grad else cost.detach())
            if self.prior_cost is not None:
                c = c + self.prior_cost
            plan, g = sinkhorn_dual(c, self.eps, self.iters, self.potential if self.training else None)
            if self.training:  # (keep_finite: a non-finite cost's potential would make every later plan NaN, in a
                # custom loop that skips such a step and goes on; the last finite one is kept, without a host sync)
                self.potential.copy_(torch.where(g.isfinite().all(), g.detach(), self.potential) if self.keep_finite
                                     else g.detach())
            return plan * c.shape[0]
