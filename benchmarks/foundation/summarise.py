"""Summarise the foundation grid: one row per run folder holding a metrics.json."""

import json
import sys
from pathlib import Path

root = Path(sys.argv[1])
rows = [
    "| run | method | aligner | dev accuracy | train steps | train time (s) | teacher | reloads | heatmap |",
    "|---|---|---|---|---|---|---|---|---|",
]
for m in sorted(root.glob("*/metrics.json")):
    r = json.loads(m.read_text())
    run = m.parent
    reloads = "yes"
    try:
        from transformers import AutoModelForSequenceClassification

        AutoModelForSequenceClassification.from_pretrained(run)
    except Exception as e:  # noqa: BLE001
        reloads = f"no ({type(e).__name__})"
    heat = "yes" if (run / "alignment.png").is_file() else "-"
    rows.append(
        f"| {run.name} | {r.get('method', r['command'])} | {r.get('align', '-')} | {100 * r['eval']['accuracy']:.2f} "
        f"| {r['train']['steps']} | {r['train']['runtime_s']:.0f} "
        f"| {'cache' if r['train'].get('teacher_cache') else 'live' if r['command'] == 'distill' else '-'} "
        f"| {reloads} | {heat} |"
    )
print("\n".join(rows))
