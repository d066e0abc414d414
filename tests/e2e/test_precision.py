"""Mixed precision and ``torch.compile`` work with every method (issue #4), on CPU here, through the Trainer."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from dynakd import DistillConfig, distill
from dynakd.config import METHOD_TERMS
from tests.conftest import make_tiny_bert


def run(teacher, out, method: str, **kw) -> dict:
    cfg = DistillConfig(teacher=str(teacher), student_layers=2, task="sst2", synthetic=True, method=method,
                        max_train_samples=48, max_eval_samples=16, max_steps=3, batch_size=16, progress=False,
                        logging_steps=1, group_by_length=False, output=str(out), **kw)
    return distill(cfg).metrics


@pytest.mark.parametrize("method", sorted(METHOD_TERMS))
def test_bf16_trains_every_method(method, tiny_teacher, tmp_path):
    """CPU autocast in bfloat16 (the Trainer needs ``use_cpu`` for it on a machine without an accelerator)."""
    metrics = run(tiny_teacher, tmp_path / "run", method, bf16=True)
    assert torch.isfinite(torch.tensor([metrics["train"]["loss"], metrics["eval"]["loss"]])).all()
    student = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run")
    assert all(p.dtype == torch.float32 for p in student.parameters())  # autocast computes in bf16, keeps fp32 weights


def test_torch_compile_matches_eager(tmp_path):
    """``--torch-compile`` on ``full`` (hidden states of every layer, dynamics, OT): the same losses as eager mode.
    Dropout is off because compiled dropout draws its masks from another generator."""
    teacher = make_tiny_bert(tmp_path / "teacher", layers=4, hidden=32, dropout=0.0)
    eager = run(teacher, tmp_path / "eager", "full")
    compiled = run(teacher, tmp_path / "compiled", "full", torch_compile=True)
    assert compiled["train"]["loss"] == pytest.approx(eager["train"]["loss"], rel=1e-4)
    assert compiled["eval"]["loss"] == pytest.approx(eager["eval"]["loss"], rel=1e-4)
