"""The runnable examples under examples/ run as written (on a tiny model, a few steps)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from transformers import AutoModelForSequenceClassification

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_own_trainer_trains_a_teacher_then_distils_a_student_that_reloads(tiny_teacher, tmp_path, monkeypatch,
                                                                           capsys):
    monkeypatch.setattr(sys, "argv", ["own_trainer.py", "--model", str(tiny_teacher), "--output", str(tmp_path),
                                      "--max-steps", "2"])
    runpy.run_path(str(EXAMPLES / "own_trainer.py"), run_name="__main__")
    assert "dev accuracy: teacher " in capsys.readouterr().out
    student = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student")
    assert student.config.num_hidden_layers == 2
