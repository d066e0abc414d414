"""Task and logit-distillation losses (pure functions).

Reference: Hinton et al. 2015, "Distilling the Knowledge in a Neural Network" (T^2-scaled KL);
DistilBERT (Sanh et al. 2019) for the task + logit recipe; MSE to the teacher's prediction for regression.
Extractive QA (DistilBERT's SQuAD recipe): both terms on the start and the end distribution over the tokens, averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import DynaKDError
from ..features import HIDDEN_LABEL


def task_loss(logits: torch.Tensor, labels: torch.Tensor, *, regression: bool = False,
              label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy (classification, logits [B, C]; ``label_smoothing`` as in ``F.cross_entropy``) or MSE to the
    label (regression, logits [B, 1]).

    Rows whose label is hidden (``HIDDEN_LABEL``, NaN for regression: transfer rows, which only the teacher
    supervises) count for nothing: the mean is over the labelled rows, and a batch without any gives 0.
    """
    if regression:
        y = labels.view(-1).float()
        known = ~torch.isnan(y)
        err = (logits.view(-1).float() - torch.where(known, y, 0.0)) ** 2
        return (err * known).sum() / known.sum().clamp_min(1)
    labels = labels.view(-1).long()
    total = F.cross_entropy(logits.float(), labels, ignore_index=HIDDEN_LABEL, reduction="sum",
                            label_smoothing=label_smoothing)
    return total / (labels != HIDDEN_LABEL).sum().clamp_min(1)


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
    if student_logits.shape != teacher_logits.shape:
        raise DynaKDError(f"logit KD compares logits of one shape; got the student's {tuple(student_logits.shape)} "
                          f"and the teacher's {tuple(teacher_logits.shape)}")
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
