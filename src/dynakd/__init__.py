"""DynaKD: feature-dynamics knowledge distillation for Hugging Face transformers.

Python API mirroring the CLI::

    from dynakd import DistillConfig, distill
    result = distill(DistillConfig(teacher="runs/teacher", student_layers=2, task="sst2", output="runs/student"))

Custom training loops use ``Distiller`` (or the pure functions in ``dynakd.losses``) directly.
"""

from .align import build_aligner
from .config import AlignConfig, DistillConfig, DynamicsConfig, build_config
from .distiller import Distiller, DistillOutput
from .errors import DynaKDError
from .features import Features, capture
from .runner import RunResult, distill, evaluate, finetune
from .schedules import Schedule
from .students import build_student
from .trainer import DistillationTrainer

__version__ = "0.1.0"

__all__ = [
    "AlignConfig",
    "DistillConfig",
    "DistillOutput",
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
]
