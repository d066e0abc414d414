"""The pooled dynamics' forms from Grams (``losses/grams.py``) against the forms' vectors without a mask, interleaved.

``dynakd bench`` times whole training steps; on a 2-core CPU their spread between runs (10-30%) is larger than what
the forms cost. This times the forms alone, forward and backward under a fixed plan, both paths in one process and
alternating call by call, so a slow spell of the machine falls on both. Between calls it allocates and frees tensors
the size of a small student's activations, as a training step does (the forms' own allocations cost most on this
CPU). The default components and forms, batch 32, width 384 (MiniLM-L6 and a student of its layers).

    python benchmarks/speed/gram_ab.py --output benchmarks/speed/gram_ab.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from dynakd.losses.dynamics import DynamicsOptions, deviation_costs, layer_change_costs, plan_loss, relation_costs
from dynakd.losses.grams import gram_costs


def forms_path(xs, xt, opts, anchors) -> dict[str, torch.Tensor]:
    """The costs from the forms' vectors (``dynamics.vector_costs``; ``pooled_costs`` before ``grams.py``)."""
    return {"deviation": deviation_costs(xs, xt, None, opts),
            "layer_change": layer_change_costs(xs, xt, None, opts, anchors),
            "relations": relation_costs(xs, xt, None, opts)}


def gram_path(xs, xt, opts, anchors) -> dict[str, torch.Tensor]:
    return gram_costs(xs, xt, None, opts, anchors)


def time_pair(ls: int, lt: int, calls: int, n: int = 32, width: int = 384, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    opts = DynamicsOptions()
    xs = torch.randn(ls + 1, 1, n, width, generator=g).requires_grad_()
    xt = torch.randn(lt + 1, 1, n, width, generator=g) + 5 * torch.randn(lt + 1, 1, 1, width, generator=g)
    plan = torch.softmax(torch.randn(ls, lt, generator=g), 1)
    anchors = torch.tensor([0] + [1 + (k * lt) // ls for k in range(ls - 1)])

    def call(path) -> float:
        xs.grad = None
        churn = [torch.empty(n, 64, width).fill_(1.0) for _ in range(3)]  # a step's activations, allocated and freed
        start = time.perf_counter()
        costs = path(xs, xt, opts, anchors)
        sum(plan_loss(plan, c) for c in costs.values()).backward()
        took = time.perf_counter() - start
        del churn
        return took

    for path in (forms_path, gram_path):  # warm-up
        for _ in range(20):
            call(path)
    times: dict[str, list[float]] = {"forms": [], "grams": []}
    for _ in range(calls):
        times["forms"].append(call(forms_path))
        times["grams"].append(call(gram_path))
    ms = {k: round(1000 * statistics.median(v), 3) for k, v in times.items()}
    return {"student_layers": ls, "teacher_layers": lt, "calls": calls, "median_ms": ms,
            "ratio": round(ms["grams"] / ms["forms"], 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=600, help="calls of each path, alternating")
    p.add_argument("--runs", type=int, default=3, help="runs of each depth pair")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--output", type=Path)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for ls, lt in ((2, 6), (6, 12)):  # MiniLM-L6 to 2 layers (the bench); BERT-base to 6 (the paper's)
        for run in range(args.runs):
            row = time_pair(ls, lt, args.calls, seed=run) | {"run": run}
            print(f"{ls} x {lt} run {run}: forms.py {row['median_ms']['forms']} ms, grams "
                  f"{row['median_ms']['grams']} ms ({row['ratio']}x)", flush=True)
            rows.append(row)
    if args.output:
        setup = {"torch": torch.__version__, "threads": args.threads, "machine": platform.machine(),
                 "batch": 32, "width": 384, "what": "forward and backward of the default components' costs"}
        args.output.write_text(json.dumps({"setup": setup, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
