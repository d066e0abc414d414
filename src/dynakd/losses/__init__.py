"""Losses: pure tensor functions returning unweighted terms; weights are applied by the distiller.

Where to add a loss: a pure function in the module of its family (``logit``, ``static``, ``dynamics``), a cost
matrix ``[Ls, Lt]`` if it compares layers, then one branch in ``Distiller.feature_terms``.
"""

from .dynamics import DynamicsOptions, dynamics_costs, feature_dynamics_loss, plan_loss
from .logit import logit_kd_loss, qa_logit_kd_loss, qa_task_loss, task_loss
from .static import hidden_mse_costs, pkd_costs

__all__ = [
    "DynamicsOptions",
    "dynamics_costs",
    "feature_dynamics_loss",
    "hidden_mse_costs",
    "logit_kd_loss",
    "pkd_costs",
    "plan_loss",
    "qa_logit_kd_loss",
    "qa_task_loss",
    "task_loss",
]
