"""Static feature baselines: match where the teacher's features are, not how they move.

Reference: Romero et al. 2015 (FitNets) and Jiao et al. 2020 (TinyBERT): hidden-state MSE through a learned
projection; Sun et al. 2019 (Patient KD): MSE of L2-normalised class-token vectors.
Both return a cost matrix ``[Ls, Lt]`` filled where ``needed [Ls, Lt]`` (bool) is true and 0 elsewhere, so any
aligner's plan can weight them: a fixed map's pairs (``needed = plan > 0``), or every pair (``torch.ones(Ls, Lt,
dtype=torch.bool)``) for a plan that reads the costs. ``student`` and ``teacher``: each model's ``L + 1`` hidden states
``[B, T, d]``, index 0 the embedding output. Of other widths, the student's go through ``projections`` (one
``nn.Linear(d_s, d_t)`` per student layer), which the caller trains.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .forms import EPS, check_layers

Hidden = Sequence[torch.Tensor]  # L+1 tensors [B, T, d]; index 0 is the embedding output


def _fill(needed: torch.Tensor, pair_cost, student: Hidden, teacher: Hidden,
          projections: nn.ModuleList | None) -> torch.Tensor:
    """Cost matrix whose entry (m, l) is ``pair_cost(m, l)`` where ``needed[m, l]``, else 0; the student's states
    (or their projections, where their width is known) checked against the teacher's width (shapes only)."""
    check_layers("needed", needed.shape, (len(student) - 1, len(teacher) - 1))
    width = student[0].shape[-1] if projections is None else getattr(projections[0], "out_features", None)
    if width is not None and width != teacher[0].shape[-1]:  # (a broadcast error in torch)
        raise ValueError(f"the student's states are {width} wide and the teacher's {teacher[0].shape[-1]}: give "
                         "projections (one nn.Linear(d_s, d_t) per student layer)")
    flags = needed.tolist()  # one transfer to the host, not one device sync per pair
    zero = torch.zeros((), device=needed.device)
    return torch.stack([torch.stack([pair_cost(m, ell) if f else zero for ell, f in enumerate(row)])
                        for m, row in enumerate(flags)])


def _project(projections: nn.ModuleList | None, m: int, h: torch.Tensor) -> torch.Tensor:
    return projections[m](h) if projections is not None else h


def hidden_mse_costs(
    student: Hidden,
    teacher: Hidden,
    *,
    mask: torch.Tensor,
    needed: torch.Tensor,
    projections: nn.ModuleList | None = None,
) -> torch.Tensor:
    """Mean squared error over real tokens between ``W_m h_s[m]`` and ``h_t[l]`` (TinyBERT), for the pairs
    ``needed`` (the module's docstring)."""
    m_tok = mask.to(torch.float32).unsqueeze(-1)  # [B, T, 1]
    # each layer's features once, however many pairs read them (a projection is a matmul)
    student_at = functools.cache(lambda m: _project(projections, m, student[m + 1]).float())  # [B, T, d_t]
    teacher_at = functools.cache(lambda ell: teacher[ell + 1].detach().float())  # [B, T, d_t]

    def cost(m: int, ell: int) -> torch.Tensor:
        hs, ht = student_at(m), teacher_at(ell)
        return (((hs - ht) ** 2) * m_tok).sum() / (m_tok.sum() * ht.shape[-1]).clamp_min(1.0)

    return _fill(needed, cost, student, teacher, projections)


def pkd_costs(
    student: Hidden,
    teacher: Hidden,
    *,
    needed: torch.Tensor,
    projections: nn.ModuleList | None = None,
) -> torch.Tensor:
    """Squared distance of L2-normalised first-token vectors, averaged over the batch (Patient KD), for the pairs
    ``needed`` (the module's docstring). Give each model's class tokens (``Features.class_tokens()``: a decoder's
    last real token, as its first token sees only itself)."""
    # each layer's first tokens once, however many pairs read them
    # (eps as the forms': at the default 1e-12 a near-zero first-token vector gives gradients of ~1e11)
    student_at = functools.cache(
        lambda m: F.normalize(_project(projections, m, student[m + 1][:, 0]).float(), dim=-1, eps=EPS))
    teacher_at = functools.cache(lambda ell: F.normalize(teacher[ell + 1][:, 0].detach().float(), dim=-1, eps=EPS))

    def cost(m: int, ell: int) -> torch.Tensor:
        return ((student_at(m) - teacher_at(ell)) ** 2).sum(-1).mean()

    return _fill(needed, cost, student, teacher, projections)
