"""How many Sinkhorn iterations the OT aligner needs, on the costs a real run feeds it (issue #4).

Records the normalised layer costs of a short `full` run (MiniLM-L6 teacher -> 2-layer student, SST-2 batches), then
solves each step's plan with k iterations, cold and warm-started from the previous step's potential (as training
does), and compares with a 3,000-iteration solution: relative L1 distance of the plans, worst column-marginal error,
and the time per call on this CPU.

    python benchmarks/speed/ot_iterations.py --teacher runs/b1-sst2-cpu/teacher-seed42 \
        --data-dir ../shared/data/glue --output benchmarks/speed/ot_iterations.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from dynakd.align import ot
from dynakd.config import build_config
from dynakd.runner import distill

ITERS = (1, 3, 5, 10, 20, 30, 50)


def record_costs(teacher: str, data_dir: str, steps: int, layers: int) -> list[torch.Tensor]:
    """The normalised cost matrices Sinkhorn sees during ``steps`` training steps of a `full` run."""
    costs, solve = [], ot.sinkhorn_dual

    def spy(cost, eps, iters, g=None):
        costs.append(cost.detach().clone())
        return solve(cost, eps, iters, g)

    ot.sinkhorn_dual = spy  # the aligner looks the function up in its module at every call
    try:
        with tempfile.TemporaryDirectory() as out:
            distill(build_config({
                "task": "sst2", "data_dir": data_dir, "max_train_samples": 16000, "max_seq_length": 64,
                "batch_size": 32, "lr": 1e-4, "max_steps": steps, "teacher": teacher, "student_layers": layers,
                "method": "full", "output": out, "overwrite": True, "progress": False, "eval_teacher": False,
                "max_eval_samples": 32, "teacher_cache": "off",
            }))
    finally:
        ot.sinkhorn_dual = solve
    return costs


def compare(costs: list[torch.Tensor], eps: float, skip: int = 10) -> list[dict]:
    ref = [ot.sinkhorn_dual(c, eps, 3000)[0] for c in costs]
    rows = []
    for k in ITERS:
        warm, cold, cols, g = [], [], [], None
        for c, r in zip(costs, ref):
            p, g = ot.sinkhorn_dual(c, eps, k, g)
            warm.append(float((p - r).abs().sum() / r.sum()))
            cols.append(float((p.sum(0) * c.shape[1] - 1).abs().max()))
            cold.append(float((ot.sinkhorn_dual(c, eps, k)[0] - r).abs().sum() / r.sum()))
        warm, cold, cols = warm[skip:], cold[skip:], cols[skip:]  # the first steps have no useful warm start
        start = time.perf_counter()
        for c in costs:
            ot.sinkhorn_dual(c, eps, k)
        rows.append({"iters": k, "warm_l1_mean": sum(warm) / len(warm), "warm_l1_max": max(warm),
                     "warm_col_err_max": max(cols), "cold_l1_mean": sum(cold) / len(cold), "cold_l1_max": max(cold),
                     "ms_per_call": 1000 * (time.perf_counter() - start) / len(costs)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--student-layers", type=int, default=2)
    p.add_argument("--eps", type=float, default=0.05)
    p.add_argument("--output", type=Path)
    a = p.parse_args()
    costs = record_costs(a.teacher, a.data_dir, a.steps, a.student_layers)
    rows = compare(costs, a.eps)
    print("| iters | warm L1 mean | warm L1 max | warm column err max | cold L1 mean | cold L1 max | ms/call |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['iters']} | {r['warm_l1_mean']:.4f} | {r['warm_l1_max']:.4f} | {r['warm_col_err_max']:.4f} | "
              f"{r['cold_l1_mean']:.4f} | {r['cold_l1_max']:.4f} | {r['ms_per_call']:.2f} |")
    if a.output:
        setup = {"steps": a.steps, "student_layers": a.student_layers, "eps": a.eps, "threads": torch.get_num_threads(),
                 "cost_shape": list(costs[0].shape), "date": time.strftime("%Y-%m-%d")}
        a.output.write_text(json.dumps({"setup": setup, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
