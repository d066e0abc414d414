"""Task and logit-distillation losses (pure functions).

Reference: Hinton et al. 2015, "Distilling the Knowledge in a Neural Network" (T^2-scaled KL);
DistilBERT (Sanh et al. 2019) for the task + logit recipe; MSE to the teacher's prediction for regression.
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
