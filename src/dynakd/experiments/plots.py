"""Ablation bar chart: one bar per method (and aligner) per student depth, sd error bars, the teacher as a line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..config import METHODS  # noqa: E402
from .report import mean, stdev  # noqa: E402  (a NaN score draws no bar)


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
