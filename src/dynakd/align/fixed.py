"""The manual baselines: a fixed layer map that ignores the costs."""

from __future__ import annotations

import random

import torch

from ..errors import DynaKDError
from .base import Aligner, one_hot_plan, uniform_map


def fixed_map(n_student: int, n_teacher: int, mode: str = "uniform", layers: list[int] | None = None,
              seed: int = 0) -> list[int]:
    """Teacher layer (1-based) of each student layer.

    ``uniform``: ``round(m * Lt / Ls)`` (TinyBERT; a student deeper than the teacher repeats teacher layers).
    ``skip``: every ``Lt // Ls``-th layer (Patient KD "skip"). ``last``: the last ``Ls`` teacher layers (Patient KD
    "last"). Both match the top pair too, which Patient KD leaves to the logit term (its 12 -> 6 "skip" matches
    student layers 1-5 to 2, 4, 6, 8, 10). ``reversed``: the uniform map read backwards (a deliberately wrong map, the
    control for "automatic alignment helps"). ``random``: ``Ls`` distinct teacher layers drawn by ``seed`` (a run's
    seed), in increasing order: a map chosen blind, the control "Layer-Selection Strategy Doesn't Matter (Much)"
    (2025) asks automatic alignment to beat beside the uniform and last-k maps; each seed of a sweep draws its own.
    ``layers``: an explicit list.
    """
    if layers is not None:
        if len(layers) != n_student or not all(1 <= ell <= n_teacher for ell in layers):
            raise DynaKDError(
                f"align.layers must list {n_student} teacher layers in 1..{n_teacher} "
                f"(one per student layer), got {layers}"
            )
        return list(layers)
    if n_student > n_teacher and mode in ("skip", "last", "random"):  # uniform and reversed repeat teacher layers
        raise DynaKDError(f"align.fixed_map {mode} picks {n_student} of the teacher's layers, but it has {n_teacher}: "
                          "use fixed_map uniform (which repeats teacher layers), align.layers, or --align ot or "
                          "attention")
    if mode == "skip":
        k = n_teacher // n_student
        return [m * k for m in range(1, n_student + 1)]
    if mode == "last":
        return list(range(n_teacher - n_student + 1, n_teacher + 1))
    if mode == "reversed":
        return uniform_map(n_student, n_teacher)[::-1]
    if mode == "random":  # its own generator: the same map in every process, whatever drew from the global ones
        return sorted(random.Random(seed).sample(range(1, n_teacher + 1), n_student))
    return uniform_map(n_student, n_teacher)


def map_said(mode: str, seed: int, layers: list[int] | None = None) -> str:
    """A fixed map as its picture, ``alignment.json`` and the model card name it (the layers are the plan's)."""
    if layers is not None:
        return "the map align.layers gives"
    if mode == "random":
        return f"the random map drawn by seed {seed}"
    return "the last-layers map" if mode == "last" else f"the {mode} map"


class FixedAligner(Aligner):
    name = "fixed"
    cost_gradient = False

    def __init__(self, n_student: int, n_teacher: int, mode: str = "uniform", layers: list[int] | None = None,
                 seed: int = 0):
        super().__init__(n_student, n_teacher, momentum=0.0)
        drawn = fixed_map(n_student, n_teacher, mode, layers, seed)
        self.register_buffer("fixed", one_hot_plan(drawn, n_teacher))
        self.described = map_said(mode, seed, layers)  # (its picture's and alignment.json's)
        self.running_plan.copy_(self.fixed)

    def plan(self, cost: torch.Tensor) -> torch.Tensor:
        return self.fixed.to(cost.device)

    def forward(self, cost: torch.Tensor) -> torch.Tensor:
        return self.plan(cost)

    def ahead(self) -> torch.Tensor:
        """The map: known before any batch's costs."""
        return self.fixed

    def track(self, p: torch.Tensor) -> None:
        """Nothing to move: the running plan is the fixed map."""

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the map comes from the config: a checkpoint of another map (train(resume_from_checkpoint=...) in Python,
        # which compares no configs) would silently replace it
        saved = state_dict.get(prefix + "fixed")
        if saved is not None and not torch.equal(saved.to(self.fixed), self.fixed):
            said = lambda plan: [int(i) + 1 for i in plan.argmax(1)]  # noqa: E731
            raise DynaKDError(f"the checkpoint's fixed layer map is {said(saved)}, this run's {said(self.fixed)} "
                              "(align.fixed_map, align.layers): resume with the map it was trained with")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
