"""How far a live teacher under mixed precision is from the float32 teacher the cache stores (issue #4).

The teacher-output cache is built by one float32 pass and stored in float16. A live teacher runs under the run's
autocast (`--bf16`): this measures, on real SST-2 dev sentences, how far its logits and pooled features (the ones
the dynamics read) are from float32, against the rounding of float16 storage. On CPU (its bfloat16 autocast casts
other operators than CUDA's and runs other kernels: a GPU's numbers would differ).

    OMP_NUM_THREADS=1 python benchmarks/speed/teacher_precision.py --teacher runs/b1-sst2-cpu/teacher-seed42 \
        --data-dir ../shared/data/glue --output benchmarks/speed/teacher_precision.json
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from dynakd.losses.dynamics import pool


def relative(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-layer relative distance ``|a - b| / |a|`` of pooled features ``[L+1, 1, B, d]``."""
    return (a - b).norm(dim=-1) / a.norm(dim=-1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teacher", required=True, help="a fine-tuned SST-2 teacher folder")
    p.add_argument("--data-dir", required=True, help="folder holding SST-2/dev.tsv")
    p.add_argument("--samples", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--output", type=Path)
    args = p.parse_args()

    tok = AutoTokenizer.from_pretrained(args.teacher)
    teacher = AutoModelForSequenceClassification.from_pretrained(args.teacher, dtype=torch.float32).eval()
    with open(Path(args.data_dir) / "SST-2" / "dev.tsv", newline="") as f:
        sentences = [row["sentence"] for row in csv.DictReader(f, delimiter="\t")][: args.samples]

    stats: dict[str, list[torch.Tensor]] = {"logits": [], "bf16": [], "fp16_storage": [], "agree": []}
    for i in range(0, len(sentences), args.batch_size):
        batch = tok(sentences[i : i + args.batch_size], padding=True, truncation=True,
                    max_length=args.max_length, return_tensors="pt")
        with torch.no_grad():
            exact = teacher(**batch, output_hidden_states=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):  # what a live teacher runs under with --bf16
                mixed = teacher(**batch, output_hidden_states=True)
        for pooling in ("mean", "cls"):
            x = pool(exact.hidden_states, batch["attention_mask"], pooling)[0]
            y = pool(mixed.hidden_states, batch["attention_mask"], pooling)[0]
            stats["bf16"].append(relative(x, y).flatten())
            stats["fp16_storage"].append(relative(x, x.half().float()).flatten())
        stats["logits"].append((exact.logits - mixed.logits.float()).abs().flatten())
        stats["agree"].append((exact.logits.argmax(-1) == mixed.logits.argmax(-1)).float())

    cat = {k: torch.cat(v) for k, v in stats.items()}
    result = {
        "teacher": args.teacher, "sentences": len(sentences), "max_length": args.max_length,
        "logits_abs_diff_bf16": {"mean": cat["logits"].mean().item(), "max": cat["logits"].max().item()},
        "pooled_rel_diff_bf16": {"mean": cat["bf16"].mean().item(), "max": cat["bf16"].max().item()},
        "pooled_rel_diff_fp16_storage": {"mean": cat["fp16_storage"].mean().item(),
                                         "max": cat["fp16_storage"].max().item()},
        "predictions_agree_bf16": cat["agree"].mean().item(),
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=1))
    if args.output:
        args.output.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
