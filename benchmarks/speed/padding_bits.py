"""Which padded lengths give a row the same teacher states, to the last bit, as the longest padding.

A row's hidden states depend, in their last bits, on the length its batch pads it to (CPU kernels reduce over the
tokens in vectors of a fixed width). The teacher cache's pass pads a row beside rows of its own length, training
beside others, so a cached run matches a live one bit for bit only where every padded length the row meets gives the
same states. For each row length ``n`` this pads a batch of rows of that length (MiniLM-L6, SST-2 dev sentences) to
every length from ``n`` to ``--max-length`` and records the lengths whose states (every layer, the row's real tokens)
equal those at ``--max-length``.

    OMP_NUM_THREADS=2 python benchmarks/speed/padding_bits.py --data-dir ../shared/data/glue \\
        --output benchmarks/speed/padding_bits.json
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from dynakd.experiments.bench import processor_name
from dynakd.packaged import resolve
from dynakd.provenance import source_commit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--output", type=Path)
    args = p.parse_args()
    folder = resolve("minilm")
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    with open(args.data_dir / "SST-2" / "dev.tsv") as f:
        sentences = [r["sentence"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    by_length: dict[int, list[list[int]]] = {}
    for ids in tokenizer(sentences, truncation=True, max_length=args.max_length)["input_ids"]:
        by_length.setdefault(len(ids), []).append(ids)
    rows = []
    for n in sorted(by_length):
        batch = by_length[n][:8]
        states = {}
        for length in range(n, args.max_length + 1):
            ids = torch.tensor([r + [tokenizer.pad_token_id] * (length - n) for r in batch])
            mask = torch.tensor([[1] * n + [0] * (length - n)] * len(batch))
            with torch.no_grad():
                hidden = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            states[length] = torch.stack([h[:, :n] for h in hidden])
        reference = states[args.max_length]
        same = [length for length, s in states.items() if torch.equal(s, reference)]
        rows.append({"tokens": n, "rows": len(batch), "same_as_longest": same,
                     "first_multiple_of_16": -(-n // 16) * 16})
        print(f"{n:3d} tokens: the same states as at {args.max_length} when padded to {same}", flush=True)
    if args.output:
        setup = {"model": "minilm", "torch": torch.__version__, "threads": torch.get_num_threads(),
                 "cpu": processor_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                 "python": platform.python_version(), "commit": source_commit(), "max_length": args.max_length}
        args.output.write_text(json.dumps(setup | {"rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
