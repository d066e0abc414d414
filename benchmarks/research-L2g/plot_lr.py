"""Dev accuracy against the student's learning rate, `kd` and default `full` (research/lr.yaml, lr-kd.yaml).

    python benchmarks/research-L2g/plot_lr.py [SWEEP_FOLDER] [OUT_PNG]

Reads the sweep records (`results.jsonl`) of the research folder, this one by default; a cell without an `lr` key
ran at the folder's 1e-4. Only cells that differ from the defaults in `lr` alone, with 2-layer students, are drawn:
each seed as a dot, the mean as a line.
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dynakd.experiments.report import load_results, score  # noqa: E402

HERE = Path(__file__).parent
BASE_LR = 1.0e-4  # research/baseline.yaml


def points(folder: Path) -> dict[str, dict[float, list[float]]]:
    """method -> lr -> dev accuracy x100 of each seed."""
    out: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in load_results(folder):
        cell = dict(record["cell"])
        method, lr, layers = cell.pop("method"), cell.pop("lr", BASE_LR), cell.pop("student_layers", None)
        if method in ("kd", "full") and layers == 2 and set(cell) <= {"seed"}:
            out[method][lr].append(score(record, "accuracy"))
    return out


def main(folder: Path = HERE, png: Path = HERE / "lr.png") -> None:
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    data = points(folder)
    for method, by_lr in sorted(data.items(), reverse=True):
        lrs = sorted(by_lr)
        line = ax.plot(lrs, [statistics.mean(by_lr[lr]) for lr in lrs], marker="o", label=method)[0]
        for lr in lrs:
            ax.scatter([lr] * len(by_lr[lr]), by_lr[lr], s=12, alpha=0.5, color=line.get_color())
    ax.set_xscale("log", base=2)
    ticks = sorted({lr for by_lr in data.values() for lr in by_lr})
    ax.set_xticks(ticks, [f"{lr:.0e}".replace("e-0", "e-") for lr in ticks])
    ax.minorticks_off()
    ax.set_xlabel("student learning rate (peak)")
    ax.set_ylabel("SST-2 dev accuracy")
    ax.set_title("6 -> 2 layers, 16k sentences, 1 epoch: mean and seeds", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    print(f"wrote {png}")


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:3]))
