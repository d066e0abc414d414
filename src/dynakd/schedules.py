"""Loss-weight schedules as pure functions of training progress t in [0, 1].

Reference: DINO's per-iteration schedules; TextBrewer's ``linear_decay``. The distiller evaluates every
weight once per step; no loss ever looks at a schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

ScheduleKind = Literal["constant", "linear", "cosine", "step"]


@dataclass
class Schedule:
    """A weight that moves from ``start`` to ``end`` as progress goes from 0 to 1.

    - ``constant``: always ``start``.
    - ``linear`` / ``cosine``: decay (or growth) from ``start`` to ``end`` after the warm-up.
    - ``step``: ``start`` before progress ``switch``, ``end`` from then on.
    ``warmup`` (a fraction of training) ramps the weight linearly from 0 to ``start`` first.
    """

    kind: ScheduleKind = "constant"
    start: float = 1.0
    end: float = 0.0
    warmup: float = 0.0
    switch: float = 0.5

    def __call__(self, t: float) -> float:
        if math.isnan(t := float(t)):  # (min and max would pass it on: a weight of NaN, or a step's end)
            raise ValueError("training progress is NaN")
        t = min(max(t, 0.0), 1.0)
        if self.warmup > 0 and t < self.warmup:
            return self.start * t / self.warmup
        if self.kind == "step":
            return self.start if t < self.switch else self.end
        if self.kind == "constant":
            return self.start
        u = (t - self.warmup) / (1.0 - self.warmup) if self.warmup < 1 else 1.0
        if self.kind == "linear":
            return self.start + (self.end - self.start) * u
        if self.kind == "cosine":
            return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * u))
        raise ValueError(f"unknown schedule kind {self.kind!r}")


def constant(value: float) -> Schedule:
    return Schedule("constant", start=value, end=value)
