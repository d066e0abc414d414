"""Task and logit-distillation losses (pure functions).

Reference: Hinton et al. 2015, "Distilling the Knowledge in a Neural Network" (T^2-scaled KL);
DistilBERT (Sanh et al. 2019) for the task + logit recipe; MSE to the teacher's prediction for regression.
Extractive QA (DistilBERT's SQuAD recipe): both terms on the start and the end distribution over the tokens, averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def task_loss(logits: torch.Tensor, labels: torch.Tensor, *, regression: bool = False) -> torch.Tensor:
    """Cross-entropy (classification, logits [B, C]) or MSE to the label (regression, logits [B, 1])."""
    if regression:
        return F.mse_loss(logits.view(-1).float(), labels.view(-1).float())
    return F.cross_entropy(logits.float(), labels.view(-1).long())


def logit_kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    temperature: float = 2.0,
    regression: bool = False,
) -> torch.Tensor:
    """``T^2 * KL(softmax(z_t / T) || softmax(z_s / T))`` averaged over the batch; MSE for regression.

    The teacher's logits are detached: no gradient ever reaches the teacher.
    """
    teacher_logits = teacher_logits.detach().float()
    student_logits = student_logits.float()
    if regression:
        return F.mse_loss(student_logits.view(-1), teacher_logits.view(-1))
    t = temperature
    log_p_s = F.log_softmax(student_logits / t, dim=-1)  # [B, C]
    log_p_t = F.log_softmax(teacher_logits / t, dim=-1)  # [B, C]
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * t * t


_NEG = -1e9  # logit of a masked position: exp() is 0 in float32, and finite, so 0 * log 0 terms stay 0 (no NaN)


def _masked(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``logits [B, 2, T]`` with the positions where ``mask [B, T]`` is 0 (padding) pushed to ``_NEG``."""
    logits = logits.float()
    if mask is None:
        return logits
    return logits.masked_fill(~mask.bool()[:, None, :], _NEG)


def qa_task_loss(logits: torch.Tensor, positions: torch.Tensor, *, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the start and end cross-entropies: ``logits [B, 2, T]`` (start, end), gold ``positions [B, 2]``.

    Padding (``mask [B, T]`` = 0) is no candidate position.
    """
    z = _masked(logits, mask)  # [B, 2, T]
    return F.cross_entropy(z.transpose(1, 2), positions.long())  # class dim T; the mean over B and {start, end}


def qa_logit_kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    temperature: float = 2.0,
) -> torch.Tensor:
    """``T^2 * KL(p_t || p_s)`` of the start and of the end distributions over the tokens, averaged.

    ``*_logits [B, 2, T]``; positions where ``mask [B, T]`` is 0 (padding) carry no probability for either model.
    The teacher's logits are detached.
    """
    t = temperature
    log_p_s = F.log_softmax(_masked(student_logits, mask) / t, dim=-1)  # [B, 2, T]
    log_p_t = F.log_softmax(_masked(teacher_logits.detach(), mask) / t, dim=-1)  # [B, 2, T]
    kl = F.kl_div(log_p_s, log_p_t, log_target=True, reduction="none").sum(-1)  # [B, 2]
    return kl.mean() * t * t
