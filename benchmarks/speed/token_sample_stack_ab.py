"""The dynamics' part of a QA step with `dynamics.token_sample`: the teacher's states stacked, the token-level costs and
their backward, with the sample drawn before the teacher's states are stacked (`Distiller.ready_teacher` stacks the
sampled positions alone, as the trainer does since session 50) against after them (every token stacked, then cut, as
before). Random states at the bench's QA shapes (MiniLM-L6 -> 2 layers: 32 windows of 384 tokens, width 384, 7 and 3
hidden states), OT, K = 64; the two ways alternate, which goes first turning each round; 4 untimed rounds first.

    OMP_NUM_THREADS=2 python benchmarks/speed/token_sample_stack_ab.py \
        --output benchmarks/speed/token_sample_stack_ab.json
"""
from __future__ import annotations

import argparse
import json
import statistics as st
import subprocess
import time
from pathlib import Path

import torch

from dynakd.config import DistillConfig, validate
from dynakd.distiller import Distiller
from dynakd.features import Features, stack_hidden


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=24)
    p.add_argument("--sample", type=int, default=64)
    p.add_argument("--output", default=None)
    a = p.parse_args()
    b, t, d = 32, 384, 384
    cfg = validate(DistillConfig(task="squad", method="full", max_seq_length=t, align={"name": "ot"},
                                 dynamics={"pooling": "tokens", "token_sample": a.sample}))
    distiller = Distiller(cfg, student_layers=2, teacher_layers=6, student_width=d, teacher_width=d, qa=True).train()
    mask = torch.ones(b, t, dtype=torch.long)
    times: dict[str, list[float]] = {"before": [], "after": []}
    for i in range(a.rounds):
        for when in (("before", "after") if i % 2 else ("after", "before")):
            s = Features(torch.zeros(b, 2, t), tuple(torch.randn(b, t, d, requires_grad=True) for _ in range(3)),
                         mask, context=mask)
            teacher = Features(torch.zeros(b, 2, t), tuple(torch.randn(b, t, d) for _ in range(7)), mask,
                               context=mask)
            start = time.perf_counter()
            if when == "before":
                teacher = distiller.ready_teacher(teacher)  # the sampled positions alone
            else:
                stack_hidden(teacher, scratch=True)  # every token; the costs draw and cut
            sum(distiller.feature_terms(s, teacher, None)[0].values()).backward()
            if i >= 4:
                times[when].append(time.perf_counter() - start)
    result = {"commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True).stdout.strip(),
              "threads": torch.get_num_threads(), "shape": [b, t, d], "sample": a.sample,
              "ms": {k: [round(1000 * x, 2) for x in v] for k, v in times.items()}}
    for when, v in times.items():
        q = st.quantiles(v, n=4)
        result[f"drawn {when} the stack"] = {"median_ms": round(1000 * st.median(v), 1),
                                            "quartiles_ms": [round(1000 * q[0], 1), round(1000 * q[2], 1)]}
        print(f"drawn {when} the stack:", json.dumps(result[f"drawn {when} the stack"]))
    if a.output:
        Path(a.output).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
