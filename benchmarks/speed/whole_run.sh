#!/usr/bin/env bash
# A whole distillation run on B1 settings with the teacher-output cache (its teacher pass included) against the same
# run with the live teacher: wall time, and the final metrics side by side (same seed).
#   bash benchmarks/speed/whole_run.sh TEACHER_DIR [OUT_DIR]
# TEACHER_DIR: the B1 teacher (e.g. runs/b1-sst2-cpu/teacher-seed42). Writes OUT_DIR/whole_run.json.
# PAD=16 pads every batch to a multiple of 16 (pad_to_multiple_of; unset: the run's default, none on a CPU): on an
# AVX-512 CPU a row's teacher states then do not depend on its batch (padding_bits.py), and a cached run with float32
# features ends with the live run's weights to the last bit (the JSON's same_weights_as_live; max length 64 here).
set -euo pipefail
TEACHER=${1:?usage: whole_run.sh TEACHER_DIR [OUT_DIR]}
OUT=${2:-runs/whole-run}
DYNAKD=${DYNAKD:-dynakd}
mkdir -p "$OUT"; rm -f "$OUT/walls.jsonl"
common=(--teacher "$TEACHER" --task sst2 --data-dir ../shared/data/glue --max-train-samples 16000
        --max-seq-length 64 --epochs 1 --batch-size 32 --lr 1e-4 --student-layers 2 --seed 1 --overwrite)
if [ -n "${PAD:-}" ]; then common+=(--set "pad_to_multiple_of=$PAD"); fi
for method in full kd; do
  for mode in live float32 float16; do
    dir="$OUT/$method-$mode"
    rm -rf "$dir" "$OUT/cache-$method-$mode" "$OUT/home-$method-$mode"
    if [ "$mode" = live ]; then cache=(--teacher-cache off); else
      cache=(--teacher-cache "$OUT/cache-$method-$mode" --set "teacher_cache_dtype=$mode"); fi
    start=$(date +%s.%N)
    # (a cache home of its own: each run scores the teacher, rather than reading the scores the first recorded)
    DYNAKD_CACHE="$OUT/home-$method-$mode" "$DYNAKD" distill --method "$method" "${common[@]}" "${cache[@]}" --output "$dir" > "$dir.log" 2>&1
    end=$(date +%s.%N)
    echo "{\"method\": \"$method\", \"mode\": \"$mode\", \"wall_s\": $(echo "$end - $start" | bc)}" >> "$OUT/walls.jsonl"
    tail -2 "$dir.log"
  done
done
# (the summary reads the students' weights with torch: the interpreter beside dynakd unless told)
PYTHON=${PYTHON:-$(dirname "$(command -v "$DYNAKD")")/python}
[ -x "$PYTHON" ] || PYTHON=python3
"$PYTHON" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

import torch
from safetensors.torch import load_file

out = Path(sys.argv[1])
rows = []
for line in (out / "walls.jsonl").read_text().splitlines():
    r = json.loads(line)
    run = out / f"{r['method']}-{r['mode']}"
    m = json.loads((run / "metrics.json").read_text())
    live, mine = (load_file(out / f"{r['method']}-{mode}" / "model.safetensors") for mode in ("live", r["mode"]))
    rows.append(r | {"accuracy": m["eval"]["accuracy"], "eval_loss": m["eval"]["loss"],
                     "train_loss": m["train"]["loss"], "train_runtime_s": m["train"]["runtime_s"],
                     "pad_to_multiple_of": m["train"]["pad_to_multiple_of"],  # (1: none)
                     "same_weights_as_live": live.keys() == mine.keys() and all(torch.equal(live[k], mine[k])
                                                                                for k in live)})
(out / "whole_run.json").write_text(json.dumps(rows, indent=1))
for r in rows:
    print(f"{r['method']:>5} {r['mode']:>8}  wall {r['wall_s']:7.1f} s  train {r['train_runtime_s']:7.1f} s  "
          f"accuracy {100 * r['accuracy']:.2f}  eval loss {r['eval_loss']:.6f}  "
          f"weights {'the live run' if r['same_weights_as_live'] else 'not the live run'}'s")
EOF
