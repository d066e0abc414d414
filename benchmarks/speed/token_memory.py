"""Peak memory of the token-level dynamics (``dynamics.pooling: tokens``, extractive QA's default), per component and
for the three default components together.

Token-level forms take one group per window whose items are its tokens, with a mask. This counts the peak of live
tensor bytes (the bench's ``TensorMemory``) while the costs are computed from both models' hidden states and
back-propagated under a uniform plan, as a step does (``dynamics_costs``: the layers stacked, then the forms), on random
hidden states of a BERT-base-sized teacher (width 768) and a 384-wide student, every token valid. The hidden states
themselves are not counted (the models made them); ``features_mib`` gives their size.

    OMP_NUM_THREADS=1 python benchmarks/speed/token_memory.py --output benchmarks/speed/token_memory-hidden.json

``--device cuda`` takes the CUDA allocator's peak above what was allocated before instead (what a GPU run pays, its
caching allocator's rounding included), and adds the paper's SQuAD scale, 32 windows of 384 tokens
(benchmarks/gpu/h200.sh's ``token-memory`` step).

(Before 2026-12-05's session 32 the script handed the forms stacked features, ``Pooled``, and counted a view's
storage where it met one: ``token_memory.json`` and ``token_memory-before.json`` were measured so.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dynakd.experiments.bench import TensorMemory, _commit
from dynakd.losses.dynamics import DynamicsOptions, dynamics_costs, plan_loss

DEFAULT = ("deviation", "layer_change", "relations")


def peak_mib(component: str, ls: int, lt: int, groups: int, tokens: int, width: int,
             device: str = "cpu") -> tuple[float, float]:
    """Peak MiB of ``component``'s costs, forward and backward, and the MiB of the hidden states themselves."""
    g = torch.Generator().manual_seed(0)
    student = [torch.randn(groups, tokens, 384, generator=g).to(device).requires_grad_() for _ in range(ls + 1)]
    teacher = [torch.randn(groups, tokens, width, generator=g).to(device) for _ in range(lt + 1)]
    made = torch.nn.Module()  # (what was there before the block: TensorMemory leaves a module's buffers out)
    for i, h in enumerate(student + teacher):
        made.register_buffer(f"h{i}", h)
    mask = torch.ones(groups, tokens, dtype=torch.long, device=device)
    components = DEFAULT if component == "default" else (component,)
    opts = DynamicsOptions(components=components, pooling="tokens")
    plan = torch.full((ls, lt), 1 / lt, device=device)
    anchors = torch.tensor([0] + [1 + (k * lt) // ls for k in range(ls - 1)], device=device)
    features = round(sum(h.numel() for h in student + teacher) * 4 / 2**20, 1)

    def costs_and_backward():
        costs = dynamics_costs(student, teacher, mask=mask, opts=opts, anchors=anchors)
        sum(plan_loss(plan, c) for c in costs.values()).backward()

    if device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        costs_and_backward()
        torch.cuda.synchronize()
        return round((torch.cuda.max_memory_allocated() - before) / 2**20, 1), features
    with TensorMemory(made) as meter:
        costs_and_backward()
    return round(meter.mib, 1), features


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output", type=Path)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    sizes = ((4, 128), (8, 128), (4, 256), (8, 384)) + (((32, 384),) if args.device == "cuda" else ())
    for groups, tokens in sizes:
        for component in (*DEFAULT, "default"):
            peak, features = peak_mib(component, 4, 12, groups, tokens, 768, args.device)
            row = {"student_layers": 4, "teacher_layers": 12, "windows": groups, "tokens": tokens, "width": 768,
                   "component": component, "peak_mib": peak, "features_mib": features, "device": args.device}
            print(row, flush=True)
            rows.append(row)
    if args.output:
        setup = {"torch": torch.__version__, "commit": _commit(), "threads": 1,
                 "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}
        args.output.write_text(json.dumps(setup | {"rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
