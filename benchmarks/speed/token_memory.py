"""Peak memory of the token-level dynamics (``dynamics.pooling: tokens``, extractive QA's default), per component and
for the three default components together.

Token-level forms take one group per window whose items are its tokens, with a mask. This counts the peak of live
tensor bytes (the bench's ``TensorMemory``) while the costs are computed from both models' hidden states and
back-propagated under a uniform plan, as a step does (``dynamics_costs``: the layers stacked, then the forms), on random
hidden states of a BERT-base-sized teacher (width 768) and a 384-wide student, every token valid. The hidden states
themselves are not counted (the models made them); ``features_mib`` gives their size. ``kept_mib`` is what the
forward leaves to the backward; ``seconds``, one run of forward and backward outside the meter (a rough guide). The
costs wait for the plan (``plan_first``, a step's default, ``losses/planfirst.py``), all windows at once; a row of
each size compares them as tensors, and the last ones take the windows a few at a time (``window_mib``, ``kept_mib``
then also holds the teacher's features, which the backward reads again: ``grams.windowed_costs``).

    OMP_NUM_THREADS=1 python benchmarks/speed/token_memory.py --output benchmarks/speed/token_memory-planfirst.json

``--device cuda`` takes the CUDA allocator's peak above what was allocated before instead (what a GPU run pays, its
caching allocator's rounding included), and adds the paper's SQuAD scale, 32 windows of 384 tokens
(benchmarks/gpu/h200.sh's ``token-memory`` step).

(Before 2026-12-05's session 32 the script handed the forms stacked features, ``Pooled``, and counted a view's
storage where it met one: ``token_memory.json`` and ``token_memory-before.json`` were measured so; before session 33
it compared the costs as tensors alone: ``token_memory-hidden*.json``.)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dynakd.experiments.bench import TensorMemory
from dynakd.losses.dynamics import DynamicsOptions, dynamics_costs, plan_loss
from dynakd.provenance import source_commit

DEFAULT = ("deviation", "layer_change", "relations")
WINDOWS = (32.0, 256.0)  # dynamics.window_mib of the last rows of each size (the other rows: all windows at once)


def peak_mib(component: str, ls: int, lt: int, groups: int, tokens: int, width: int, device: str = "cpu",
             plan_first: bool = True, window_mib: float = 0.0,
             ahead: bool = False) -> tuple[float, float, float, float]:
    """Peak MiB of ``component``'s costs, forward and backward; the MiB the forward leaves to the backward; the
    seconds of forward and backward (one run: a rough guide); and the MiB of the hidden states themselves.
    ``ahead``: the plan given before the costs (``dynamics_costs``'s ``ahead``: windows take one pass)."""
    g = torch.Generator().manual_seed(0)
    student = [torch.randn(groups, tokens, 384, generator=g).to(device).requires_grad_() for _ in range(ls + 1)]
    teacher = [torch.randn(groups, tokens, width, generator=g).to(device) for _ in range(lt + 1)]
    made = torch.nn.Module()  # (what was there before the block: TensorMemory leaves a module's buffers out)
    for i, h in enumerate(student + teacher):
        made.register_buffer(f"h{i}", h)
    mask = torch.ones(groups, tokens, dtype=torch.long, device=device)
    components = DEFAULT if component == "default" else (component,)
    opts = DynamicsOptions(components=components, pooling="tokens", window_mib=window_mib)
    plan = torch.full((ls, lt), 1 / lt, device=device)
    anchors = torch.tensor([0] + [1 + (k * lt) // ls for k in range(ls - 1)], device=device)
    features = round(sum(h.numel() for h in student + teacher) * 4 / 2**20, 1)

    def costs_and_backward(live) -> float:
        costs = dynamics_costs(student, teacher, mask=mask, opts=opts, anchors=anchors, plan_first=plan_first,
                               ahead=(plan, {}) if ahead else None)
        loss = sum(plan_loss(plan, c) for c in costs.values())
        del costs
        kept = live()
        loss.backward()
        return kept

    if device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        kept = costs_and_backward(lambda: torch.cuda.memory_allocated() - before)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        return (round((torch.cuda.max_memory_allocated() - before) / 2**20, 1), round(kept / 2**20, 1),
                round(seconds, 3), features)
    with TensorMemory(made) as meter:
        kept = costs_and_backward(lambda: meter.live)
    start = time.perf_counter()  # (timed outside the meter, which slows every operator)
    costs_and_backward(lambda: 0)
    return round(meter.mib, 1), round(kept / 2**20, 1), round(time.perf_counter() - start, 3), features


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output", type=Path)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    sizes = ((4, 128), (8, 128), (4, 256), (8, 384)) + (((32, 384),) if args.device == "cuda" else ())
    for groups, tokens in sizes:
        rows_of_size = [(c, True, 0.0) for c in (*DEFAULT, "default")] + [("default", False, 0.0)] + [
            ("default", True, w) for w in WINDOWS]
        for component, plan_first, window_mib in rows_of_size:
            peak, kept, seconds, features = peak_mib(component, 4, 12, groups, tokens, 768, args.device, plan_first,
                                                     window_mib)
            row = {"student_layers": 4, "teacher_layers": 12, "windows": groups, "tokens": tokens, "width": 768,
                   "component": component, "plan_first": plan_first, "window_mib": window_mib, "peak_mib": peak,
                   "kept_mib": kept, "seconds": seconds, "features_mib": features, "device": args.device}
            print(row, flush=True)
            rows.append(row)
    if args.output:
        setup = {"torch": torch.__version__, "commit": source_commit(), "threads": 1,
                 "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}
        args.output.write_text(json.dumps(setup | {"rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
