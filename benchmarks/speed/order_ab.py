"""Whole training steps with the live teacher run before the student (and pooled at once, ``Distiller.pooled_teacher``)
against after it, as before 8c17f31: `kd` and `full` (OT), MiniLM-L6 -> 2 layers, 2,048 real SST-2 sentences in
length-grouped batches of 32 (the bench's set-up), timed by ``dynakd bench``'s own ``bench_one``, the two orders
alternating pair by pair. The former order is rebuilt from the source of ``DistillationTrainer.compute_loss`` (the two
blocks swapped back): written against the trainer as of the stop's mend after 8a753c3, it stops (a ValueError or an
assert) where that text has changed.

    python benchmarks/speed/order_ab.py [PAIRS [OUTPUT.json]]   # from the repository root; ../shared/data/glue
"""
import dataclasses
import inspect
import json
import statistics as st
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import torch

from dynakd import trainer as T
from dynakd.config import build_config
from dynakd.data.load import encode, load_data
from dynakd.experiments import bench as Bm
from dynakd.models import load_task_model, load_tokenizer, ready_to_pad

src = textwrap.dedent(inspect.getsource(T.DistillationTrainer.compute_loss))
new_block_start = src.index("    teacher = cached_features(inputs)")
new_block_end = src.index("    if CONTEXT_MASK in inputs:")
block = src[new_block_start:new_block_end]
t_part = block[: block.index("    device = self.args.device")]
s_part = block[block.index("    device = self.args.device"):]
t_old = t_part.replace("        else:  # (states not captured, or read as they are: as it was)\n"
                       "            teacher = self.distiller.pooled_teacher(teacher)\n", "")
assert t_old != t_part
old_src = src[:new_block_start] + s_part + t_old + src[new_block_end:]
ns = dict(vars(T))
exec(compile(old_src, "old_compute_loss", "exec"), ns)
OLD, NEW = ns["compute_loss"], T.DistillationTrainer.compute_loss

base = build_config({"teacher": "minilm", "student_layers": 2, "task": "sst2", "data_dir": "../shared/data/glue",
                     "max_train_samples": 2048, "batch_size": 32, "max_seq_length": 64, "progress": False})
task, data = load_data(base)
teacher = load_task_model(base.teacher, task)
tok = load_tokenizer(base.teacher)
ready_to_pad(teacher, tok, base.teacher)
data, _ = encode(base, task, data, tok)
tmp = Path(tempfile.mkdtemp())
warmup, steps, pairs = 5, 20, int(sys.argv[1]) if len(sys.argv) > 1 else 6
res = {}
for i in range(pairs):
    for method in ("kd", "full"):
        cfg = build_config(dataclasses.asdict(base) | {"method": method, "align": {"name": "ot"},
                                                       "max_steps": warmup + steps})
        for order in (("old", "new") if i % 2 else ("new", "old")):
            T.DistillationTrainer.compute_loss = OLD if order == "old" else NEW
            r = Bm.bench_one(cfg, teacher, tok, data, task, None, tmp, warmup)
            res.setdefault((method, order), []).append(1000 * st.median(r["times"][warmup:]))
for k, v in res.items():
    print(k, [round(x, 1) for x in v], "median", round(st.median(v), 1))
out = {"commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
       "pairs": pairs, "warmup": warmup, "steps": steps, "threads": torch.get_num_threads(),
       "step_medians_ms": {f"{m} {o}": [round(x, 2) for x in v] for (m, o), v in res.items()}}
for order in ("old", "new"):
    ratios = [f / k for f, k in zip(res[("full", order)], res[("kd", order)])]
    print(order, "full/kd per pair", [round(x, 3) for x in ratios], "median", round(st.median(ratios), 3))
    out[f"full_over_kd {order}"] = [round(x, 4) for x in ratios]
if len(sys.argv) > 2:
    Path(sys.argv[2]).write_text(json.dumps(out, indent=1))
