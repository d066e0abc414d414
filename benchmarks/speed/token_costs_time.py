"""Time and peak memory of the token-level dynamics costs alone, forward and backward, all windows at once against a
few at a time (``dynamics.window_mib``), at extractive QA's scale on the bench's models: a 2-layer student and a
6-layer teacher, both 384 wide (MiniLM-L6), 32 windows of 384 and of 192 tokens, random hidden states, every token
valid, the default components under a uniform plan, the student's steps anchored at teacher layers 0 and 3
(``token_memory.py``'s set-up at other sizes; it anchors them as the uniform map does). Windows are timed with the plan
given after the costs (two passes: the values, then in the backward the forms again) and before them (``plan_ahead``:
one pass, as a fixed map or ``align.plan_every`` allow).

Run it under the host allocator's usual settings and again with freed memory kept for reuse, to see what fresh large
tensors cost on a CPU (each one past glibc's mmap threshold is new pages, faulted in as they are first written):

    python benchmarks/speed/token_costs_time.py --output benchmarks/speed/token_costs_time.json
    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 \\
        python benchmarks/speed/token_costs_time.py --output benchmarks/speed/token_costs_time-malloc.json

and with PyTorch's own switch for transparent huge pages on its large CPU tensors (fewer, larger page faults):

    THP_MEM_ALLOC_ENABLE=1 \\
        python benchmarks/speed/token_costs_time.py --output benchmarks/speed/token_costs_time-thp.json

Each row: the seconds of the forward (the costs) and of the backward, three runs after one untimed; the peak and kept
MiB from ``token_memory.peak_mib``; the process's peak resident set at the end (``ru_maxrss``, read as Linux gives it,
in KiB) in the setup.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from token_memory import peak_mib

from dynakd.experiments.bench import allocator_env, max_rss_mib
from dynakd.losses.dynamics import DynamicsOptions, dynamics_costs, plan_loss
from dynakd.provenance import source_commit

LS, LT, WIDTH, GROUPS = 2, 6, 384, 32


def times(tokens: int, window_mib: float, ahead: bool = False, runs: int = 3) -> list[tuple[float, float]]:
    """(forward, backward) seconds of each run, after one untimed; ``ahead``: the plan given before the costs."""
    g = torch.Generator().manual_seed(0)
    student = [torch.randn(GROUPS, tokens, WIDTH, generator=g).requires_grad_() for _ in range(LS + 1)]
    teacher = [torch.randn(GROUPS, tokens, WIDTH, generator=g) for _ in range(LT + 1)]
    mask = torch.ones(GROUPS, tokens, dtype=torch.long)
    opts = DynamicsOptions(pooling="tokens", window_mib=window_mib)
    plan, anchors = torch.full((LS, LT), 1 / LT), torch.tensor([0, 3])
    out = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        costs = dynamics_costs(student, teacher, mask=mask, opts=opts, anchors=anchors, plan_first=True,
                               ahead=(plan, {}) if ahead else None)
        loss = sum(plan_loss(plan, c) for c in costs.values())
        del costs
        middle = time.perf_counter()
        loss.backward()
        out.append((round(middle - start, 3), round(time.perf_counter() - middle, 3)))
    return out[1:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output", type=Path)
    args = p.parse_args()
    torch.set_num_threads(2)
    rows = []
    for tokens in (384, 192):
        for window_mib, ahead in ((0.0, False), (32.0, False), (32.0, True)):
            peak, kept, _, features = peak_mib("default", LS, LT, GROUPS, tokens, WIDTH, "cpu", True, window_mib,
                                               ahead)
            row = {"windows": GROUPS, "tokens": tokens, "student_layers": LS, "teacher_layers": LT, "width": WIDTH,
                   "window_mib": window_mib, "plan_ahead": ahead,
                   "forward_backward_s": times(tokens, window_mib, ahead), "peak_mib": peak, "kept_mib": kept,
                   "features_mib": features}
            print(row, flush=True)
            rows.append(row)
    setup = {"torch": torch.__version__, "commit": source_commit(), "threads": 2, "malloc_env": allocator_env(),
             "max_rss_mib": max_rss_mib()}
    print(setup)
    if args.output:
        args.output.write_text(json.dumps(setup | {"rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
