"""Aligners: which student layer learns from which teacher layer. Cost matrix in, plan ``[Ls, Lt]`` out."""

from __future__ import annotations

from .attention import AttentionAligner
from .base import Aligner, normalise_cost, one_hot_plan, order_prior, uniform_map, uniform_plan
from .fixed import FixedAligner, fixed_map
from .ot import OTAligner, sinkhorn


def build_aligner(cfg, n_student: int, n_teacher: int, seed: int = 0) -> Aligner:
    """Aligner from an ``AlignConfig``; ``seed``: the run's (``DistillConfig.seed``, which ``Distiller`` passes; not
    ``TrainingArguments.seed`` of one's own Trainer), which draws the fixed aligner's ``random`` map."""
    if cfg.name == "fixed":
        return FixedAligner(n_student, n_teacher, cfg.fixed_map, cfg.layers, seed)
    if cfg.name == "attention":
        return AttentionAligner(n_student, n_teacher, cfg.tau, cfg.learned, cfg.plan_momentum, cfg.plan_every,
                                cfg.order_prior, cfg.relative)
    if cfg.name == "ot":
        return OTAligner(n_student, n_teacher, cfg.eps, cfg.iters, cfg.order_prior, cfg.plan_grad, cfg.plan_momentum,
                         cfg.plan_every)
    raise ValueError(f"no aligner named {cfg.name!r}")  # a new aligner: README, "Adding an aligner"


__all__ = [
    "Aligner",
    "AttentionAligner",
    "FixedAligner",
    "OTAligner",
    "build_aligner",
    "fixed_map",
    "normalise_cost",
    "one_hot_plan",
    "order_prior",
    "sinkhorn",
    "uniform_map",
    "uniform_plan",
]
