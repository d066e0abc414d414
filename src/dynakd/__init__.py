"""DynaKD: feature-dynamics knowledge distillation for Hugging Face transformers.

Python API mirroring the CLI::

    from dynakd import DistillConfig, distill
    result = distill(DistillConfig(teacher="runs/teacher", student_layers=2, task="sst2", output="runs/student"))

Custom training loops use ``Distiller`` (or the pure functions in ``dynakd.losses``) directly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Imported on first use (PEP 562), so that `dynakd --help` and `dynakd --version` answer without loading torch and
# transformers.
_EXPORTS = {
    "build_aligner": "align",
    "AlignConfig": "config",
    "DistillConfig": "config",
    "DynamicsConfig": "config",
    "build_config": "config",
    "Distiller": "distiller",
    "DistillOutput": "distiller",
    "DynaKDError": "errors",
    "Features": "features",
    "capture": "features",
    "split_inputs": "features",
    "DistillationCollator": "data.prepare",
    "RunResult": "runner",
    "distill": "runner",
    "evaluate": "runner",
    "finetune": "runner",
    "Schedule": "schedules",
    "build_student": "students",
    "DistillationTrainer": "trainer",
}

if TYPE_CHECKING:
    from .align import build_aligner
    from .config import AlignConfig, DistillConfig, DynamicsConfig, build_config
    from .data.prepare import DistillationCollator
    from .distiller import Distiller, DistillOutput
    from .errors import DynaKDError
    from .features import Features, capture, split_inputs
    from .runner import RunResult, distill, evaluate, finetune
    from .schedules import Schedule
    from .students import build_student
    from .trainer import DistillationTrainer


def __getattr__(name: str):
    if name not in _EXPORTS:  # a submodule, as `import dynakd; dynakd.losses` gave when everything was imported
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError:
            raise AttributeError(f"module 'dynakd' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


# The subpackages a user reaches for by name (README): listed by tab completion with the API
_SUBPACKAGES = ("align", "losses", "schedules", "data", "experiments")


def __dir__() -> list[str]:  # tab completion lists the API before it is imported, not this module's own helpers
    own = {k for k in globals() if k.startswith("__") or k in _EXPORTS or k in _SUBPACKAGES}
    return sorted(own | set(_EXPORTS) | set(_SUBPACKAGES))


__all__ = [
    "AlignConfig",
    "DistillConfig",
    "DistillOutput",
    "DistillationCollator",
    "DistillationTrainer",
    "Distiller",
    "DynaKDError",
    "DynamicsConfig",
    "Features",
    "RunResult",
    "Schedule",
    "build_aligner",
    "build_config",
    "build_student",
    "capture",
    "distill",
    "evaluate",
    "finetune",
    "split_inputs",
]
