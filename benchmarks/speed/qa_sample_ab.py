"""Token-level dynamics on a sample of tokens against `kd`, step by step on the same SQuAD batches (issue #4).

`dynakd bench --epoch` compares whole epochs, whose spread on a shared 2-core machine is as wide as the gap it measures
(RESULTS.md, "Token sampling at K = 64 on SQuAD epochs, again": 1.13x by the median epochs, 1.06x paired). Here
`kd`, `full` with `dynamics.token_sample=K` and `full` with every token train the same batches in the same order
(``dynakd bench``'s ``bench_one``: MiniLM-L6 -> 2 layers, OT, windows of 384 by default), one run of each in turn,
in the bench's orders of repeats (each first in turn, none always after the same one); each batch's time is
compared with `kd`'s time for that batch in the same round, so a slow spell of the machine weighs on one round's pair
rather than on one method.

    OMP_NUM_THREADS=2 python benchmarks/speed/qa_sample_ab.py --samples 256 --rounds 4 --sample 64,32 \
        --output benchmarks/speed/cpu-1207-qa-sample-ab.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics as st
import subprocess
import tempfile
from pathlib import Path

import torch

from dynakd.config import build_config
from dynakd.data.load import encode, load_data
from dynakd.experiments import bench as Bm
from dynakd.models import load_task_model, load_tokenizer, ready_to_pad


def bootstrap(ratios: list[float], draws: int = 2000, seed: int = 0) -> list[float]:
    """95% interval of the median of ``ratios`` by resampling them."""
    rng = random.Random(seed)
    meds = sorted(st.median(rng.choices(ratios, k=len(ratios))) for _ in range(draws))
    return [round(meds[int(0.025 * draws)], 4), round(meds[int(0.975 * draws) - 1], 4)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-file", default="../shared/data/squad/dev-v1.1.json")
    p.add_argument("--samples", type=int, default=256, help="SQuAD questions (their windows make the batches)")
    p.add_argument("--sample", default="64", help="comma-separated token_sample values")
    p.add_argument("--max-seq-length", type=int, default=384, help="window length (dynakd bench's for QA)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1, help="untimed first steps of each run")
    p.add_argument("--output", default=None)
    a = p.parse_args()
    base = build_config({"teacher": "minilm", "student_layers": 2, "task": "squad", "train_file": a.train_file,
                         "validation_file": a.train_file,  # (evaluated on nothing: load_data asks for one)
                         "max_train_samples": a.samples, "max_seq_length": a.max_seq_length,
                         "max_eval_samples": 1, "batch_size": 32, "align": {"name": "ot"},
                         "progress": False})
    task, data = load_data(base)
    teacher = load_task_model(base.teacher, task, note_head=False)
    tok = load_tokenizer(base.teacher)
    ready_to_pad(teacher, tok, base.teacher)
    data, _ = encode(base, task, data, tok)
    batches = -(-len(data["train"]) // base.batch_size)
    configs = {"kd": {"method": "kd"}, "full all": {"method": "full"}}
    configs |= {f"full K={k}": {"method": "full", "dynamics": {"pooling": "tokens", "token_sample": int(k)}}
                for k in a.sample.split(",")}
    tmp = Path(tempfile.mkdtemp())
    times: dict[str, list[list[float]]] = {name: [] for name in configs}
    shapes = None
    names = list(configs)
    # each first in turn, and no configuration always after the same one (the bench's own orders; the first run of
    # this script turned one cyclic order, each configuration after the same one)
    for r, order in enumerate(Bm.repeat_orders(names, a.rounds)):
        for name in order:
            cfg = build_config(dataclasses.asdict(base) | configs[name] | {"max_steps": batches})
            out = Bm.bench_one(cfg, teacher, tok, data, task, None, tmp, a.warmup)
            times[name].append(out["times"][a.warmup:])
            shapes = shapes or out["batch_shapes"]
            assert out["batch_shapes"] == shapes, "the methods must train the same batches"
            print(f"round {r + 1} {name:>10}: {sum(times[name][-1]):.1f} s over {len(times[name][-1])} steps",
                  flush=True)
    result = {"commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True).stdout.strip(),
              "threads": torch.get_num_threads(), "rounds": a.rounds, "warmup_steps": a.warmup,
              "orders": Bm.repeat_orders(names, a.rounds),
              "batch_shapes": shapes, "processor": Bm.processor_name(),
              "step_s": {n: [[round(x, 4) for x in run] for run in v] for n, v in times.items()}}
    for name in names[1:]:
        per_step = [f / k for fs, ks in zip(times[name], times["kd"]) for f, k in zip(fs, ks)]
        per_round = [sum(fs) / sum(ks) for fs, ks in zip(times[name], times["kd"])]
        result[f"{name} / kd"] = {"per_step_median": round(st.median(per_step), 4),
                                  "per_step_median_95": bootstrap(per_step),
                                  "per_round": [round(x, 4) for x in per_round],
                                  "pooled": round(sum(map(sum, times[name])) / sum(map(sum, times["kd"])), 4)}
        print(name, "/ kd:", json.dumps(result[f"{name} / kd"]))
    if a.output:
        Path(a.output).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
