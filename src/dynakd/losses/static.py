"""Static feature baselines: match where the teacher's features are, not how they move.

Reference: Romero et al. 2015 (FitNets) and Jiao et al. 2020 (TinyBERT): hidden-state MSE through a learned
projection; Sun et al. 2019 (Patient KD): MSE of L2-normalised first-token vectors.
Both return a cost matrix ``[Ls, Lt]`` filled where ``needed`` is true, so any aligner's plan can weight them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

Hidden = Sequence[torch.Tensor]  # L+1 tensors [B, T, d]; index 0 is the embedding output


def _fill(needed: torch.Tensor, pair_cost) -> torch.Tensor:
    """Cost matrix whose entry (m, l) is ``pair_cost(m, l)`` where ``needed[m, l]``, else 0."""
    rows = []
    for m in range(needed.shape[0]):
        zero = torch.zeros((), device=needed.device)
        rows.append(torch.stack([pair_cost(m, ell) if needed[m, ell] else zero for ell in range(needed.shape[1])]))
    return torch.stack(rows)


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
    """Mean squared error over real tokens between ``W_m h_s[m]`` and ``h_t[l]`` (TinyBERT)."""
    m_tok = mask.to(torch.float32).unsqueeze(-1)  # [B, T, 1]

    def cost(m: int, ell: int) -> torch.Tensor:
        hs = _project(projections, m, student[m + 1]).float()  # [B, T, d_t]
        ht = teacher[ell + 1].detach().float()  # [B, T, d_t]
        return (((hs - ht) ** 2) * m_tok).sum() / (m_tok.sum() * ht.shape[-1]).clamp_min(1.0)

    return _fill(needed, cost)


def pkd_costs(
    student: Hidden,
    teacher: Hidden,
    *,
    needed: torch.Tensor,
    projections: nn.ModuleList | None = None,
) -> torch.Tensor:
    """Squared distance of L2-normalised first-token vectors, averaged over the batch (Patient KD)."""

    def cost(m: int, ell: int) -> torch.Tensor:
        hs = F.normalize(_project(projections, m, student[m + 1][:, 0]).float(), dim=-1)  # [B, d_t]
        ht = F.normalize(teacher[ell + 1][:, 0].detach().float(), dim=-1)  # [B, d_t]
        return ((hs - ht) ** 2).sum(-1).mean()

    return _fill(needed, cost)
