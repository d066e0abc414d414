"""Two processes (``torchrun --nproc_per_node 2``, gloo on CPU) with ``dynamics.gather`` follow the same loss curve
and reach the same metrics, distiller state and weights as one process with the same global batch.

Tolerance: relative 1e-5 on every logged loss and loss term (5e-5 on the gradient norm, see below), on the eval
metrics and on the distiller's references and running plan; 1e-6 absolute on the final weights. Dropout is off (the
two set-ups draw different masks) and the only other difference is the order of floating-point sums (measured: ~1e-7
relative).
Batches are random (``--no-group-by-length``): with length grouping each process pads its half of the batch to its
own longest sentence, which changes the rounding of the matrix products (measured: 4e-5 relative on the gradient
norm), not which samples a step sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from dynakd.cli import main

from ..conftest import make_tiny_bert

# 37 evaluation rows: the processes' last batches repeat a row to even out, which the Trainer's eval loss counted
SETTINGS = ["--student-layers", "2", "--synthetic", "--max-train-samples", "48", "--max-eval-samples", "37",
            "--max-seq-length", "32", "--no-progress", "--logging-steps", "1", "--max-steps", "4", "--method", "full",
            "--align", "ot", "--no-group-by-length", "--set", "dynamics.gather=true", "--set", "dynamics.reference=ema",
            "--keep-checkpoints"]


def logged(out: Path) -> list[dict[str, float]]:
    """Training log of every step (losses, terms, weights, gradient norm)."""
    history = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
    keep = ("loss", "grad_norm", "weight")
    return [{k: v for k, v in h.items() if k.startswith(keep)} for h in history if "loss" in h]


def assert_same_run(two: Path, one: Path, *, weights_atol: float) -> None:
    """Same loss curve, eval metrics of student and teacher, distiller state and final weights (tolerances above)."""
    curve_two, curve_one = logged(two), logged(one)
    assert len(curve_two) == len(curve_one) == 4
    for a, b in zip(curve_two, curve_one):
        assert a.keys() == b.keys() and "loss/dyn/relations" in a
        for key in a:
            # terms are logged to 6 decimals; the gradient norm gets 5e-5: the default 20 Sinkhorn iterations stop
            # short of convergence, which carries the rounding of the process-averaged cost into the plan and the
            # gradient (measured 1.1e-5; 50 iterations meet 1e-5)
            rel = 5e-5 if key == "grad_norm" else 1e-5
            # (terms near 0, a few 1e-5, keep float32's rounding of their cancelling sums: 2e-6 absolute, times beta's
            # 10 for what they add to the loss)
            tiny = 2e-5 if key.startswith("weighted/") else 2e-6
            assert a[key] == pytest.approx(b[key], rel=rel, abs=tiny), key

    m_two, m_one = (json.loads((out / "metrics.json").read_text()) for out in (two, one))
    assert m_two["train"]["processes"] == 2 and m_one["train"]["processes"] == 1
    for split in ("eval", "teacher_eval"):
        for key in ("loss", "accuracy"):
            assert m_two[split][key] == pytest.approx(m_one[split][key], rel=1e-5), (split, key)

    state_two, state_one = (torch.load(out / "checkpoint-4" / "dynakd_distiller.pt") for out in (two, one))
    for key in ("ref_s", "ref_t", "aligner.running_plan"):
        torch.testing.assert_close(state_two[key], state_one[key], rtol=1e-5, atol=1e-5, msg=key)
    w_two, w_one = load_file(two / "model.safetensors"), load_file(one / "model.safetensors")
    for key in w_one:
        torch.testing.assert_close(w_two[key], w_one[key], rtol=0, atol=weights_atol, msg=key)


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo")
def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    teacher = make_tiny_bert(tmp_path / "teacher", dropout=0.0)
    args = ["distill", "--teacher", str(teacher), *SETTINGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "dynakd.cli",
         *args, "--batch-size", "8", "--output", str(tmp_path / "two")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # DDP is told every parameter gets a gradient: each process warned it had looked for unused ones, and found none
    assert "find_unused_parameters=True was specified" not in proc.stderr
    assert main([*args, "--batch-size", "16", "--output", str(tmp_path / "one")]) == 0
    two, one = tmp_path / "two", tmp_path / "one"

    assert_same_run(two, one, weights_atol=1e-6)
