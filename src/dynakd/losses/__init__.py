"""Losses: pure tensor functions returning unweighted terms; weights are applied by the distiller.

Where to add a loss (each returns a cost matrix ``[Ls, Lt]`` if it compares layers):
- a dynamics component: its cost function in ``dynamics.py`` and a branch in ``pooled_costs`` and in
  ``vector_costs`` (``grams.py`` computes the first three components from Grams; a new one needs nothing there).
  An input of its own goes in ``Pooled``, which ``cudagraphs`` passes to its recordings field by field. Then its
  name in ``config.COMPONENTS`` (the distiller then logs it as ``dyn/<name>``); one that needs the live teacher or
  both models on the same tokens also goes in ``distiller.token_level`` (which ``cache.cache_blocker`` reads);
- a layer term of a method of its own: its cost function in the module of its family (``static``, ...), the method
  in ``config.METHOD_TERMS`` and ``DistillConfig.method``, and a branch in ``Distiller.feature_terms``;
- a logit term: ``logit.py``, called from ``Distiller.forward``.
An aligner lives in ``dynakd.align`` (README, "Adding an aligner": ``Distiller(aligner=...)``, or a branch in
``build_aligner`` and its name in ``config.ALIGNERS`` and ``AlignConfig.name``).
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
