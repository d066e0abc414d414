"""Ablation bar chart: one bar per method (and aligner) per student depth, sd error bars, the teacher as a line; and
the alignment heatmaps the report copies from its runs."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..config import METHODS, layer_term  # noqa: E402
from .report import mean, note, stdev  # noqa: E402  (a NaN score draws no bar)


def plot_ablation(rows: list[dict[str, Any]], path: Path, metric: str) -> None:
    depths = sorted({r["depth"] for r in rows}, reverse=True)
    labels = sorted({(r["method"], r["align"], r["variant"]) for r in rows}, key=lambda x: (_order(x[0]), x[1:]))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + 0.5 * len(labels) * len(depths)) + 1.6, 3.6))
    cmap = plt.get_cmap("tab20")
    for j, (method, align, var) in enumerate(labels):
        xs, ys, es = [], [], []
        for i, depth in enumerate(depths):
            key = (depth, method, align, var)
            row = next((r for r in rows if (r["depth"], r["method"], r["align"], r["variant"]) == key), None)
            if row:
                xs.append(i + (j - (len(labels) - 1) / 2) * width)
                ys.append(mean(row["scores"]))
                es.append(stdev(row["scores"]) if len(row["scores"]) > 1 else 0.0)
        name = (method if align == "-" else f"{method} / {align}") + ("" if var == "-" else f" ({var})")
        ax.bar(xs, ys, width, yerr=es, capsize=2, label=name, color=cmap(j % 20))
    teacher = [t for r in rows for t in r["teacher"]]
    if teacher and not math.isnan(level := mean(teacher)):  # the ceiling the bars are read against
        ax.axhline(level, color="0.3", linestyle="--", linewidth=1, label=f"teacher ({level:.1f})")
    ax.set_xticks(range(len(depths)), [f"{d}-layer student" for d in depths])
    ax.set_ylabel(f"dev {metric} (x100)")
    drawn = [v for r in rows for v in r["scores"] + r["teacher"] if not math.isnan(v)]
    if drawn:  # the teacher's line stays inside the axes
        ax.set_ylim(max(0.0, min(drawn) - 3), min(100.0, max(drawn) + 1.5))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside, never over a bar
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _order(method: str) -> int:
    order = list(METHODS)
    return order.index(method) if method in order else len(order)


def alignment_plots(records: list[dict[str, Any]], folder: Path) -> list[str]:
    """One ``alignment_<aligner>_L<depth>.png`` per aligner and depth, copied from a run's folder: the plan at the end
    of training of the lowest seed's run of ``full`` (or of another layer method; the first such in the file). Returns
    the report's words naming the run each shows.

    A run folder that is not where the record says (a relative path counts from the folder ``ablate`` ran in) is
    looked for in this folder's ``cells/``, then from this folder's parents; one found nowhere is named in a note,
    and an earlier report's picture of it stays, said to be that. Pictures of aligners and depths the results no
    longer hold are removed."""
    chosen: dict[tuple[str, int], dict[str, Any]] = {}
    for r in sorted(records, key=lambda r: (r["method"] != "full", r["seed"])):
        if layer_term(r["method"]):
            chosen.setdefault((r["align"], r["student_layers"]), r)
    names = {(align, depth): f"alignment_{align}_L{depth}.png" for align, depth in chosen}
    for old in folder.glob("alignment_*.png"):
        if old.name not in names.values():
            old.unlink()
    said, missing = [], []
    for where, r in sorted(chosen.items()):
        name, key = names[where], r.get("key", "?")
        if (run := run_folder(r.get("output"), folder)) is not None:
            shutil.copy(run / "alignment.png", folder / name)
            said.append(f"`{name}` of `{key}`")
        elif (folder / name).is_file():
            said.append(f"`{name}` an earlier report's (the folder of `{key}` is not on this machine)")
            missing.append(f"{name} (an earlier report's stays): {r.get('output')}")
        elif r.get("output"):  # (a record written by hand may name no folder)
            missing.append(f"{name}: {r['output']}")
    if missing:
        note(f"{len(missing)} alignment heatmap(s) not drawn, their runs' folders hold no alignment.png here (run the "
             f"report where the sweep ran, or keep its cells/ beside results.jsonl): {'; '.join(missing)}")
    return said


def run_folder(output: str | None, folder: Path) -> Path | None:
    """The folder of a record's run that holds its ``alignment.png``: in ``folder/cells/`` (the sweep's own, however
    it is reached or was renamed since), as recorded (relative to the current folder), or relative to one of
    ``folder``'s parents (the folder ``ablate`` ran in); None where none does. The sweep's own comes first: as
    recorded, a relative path may name another checkout's run of the same name."""
    if not output:
        return None
    path = Path(output)
    tries = [folder / "cells" / path.name, path]
    tries += [] if path.is_absolute() else [parent / path for parent in folder.resolve().parents]
    return next((t for t in tries if (t / "alignment.png").is_file()), None)
