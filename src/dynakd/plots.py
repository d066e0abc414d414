"""Pictures: the alignment plan as a labelled heatmap.

Figures are built with ``matplotlib.figure.Figure`` and saved through their own canvas, never through ``pyplot``:
training in a notebook draws these at each evaluation, and ``pyplot`` (or ``matplotlib.use``) would switch the
notebook's backend and keep every figure alive in its registry."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from matplotlib import image
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle


def plot_alignment(plan: torch.Tensor, path: Path, title: str = "alignment", *, averaged: bool = True,
                   held: tuple[int, float] | None = None, started: list[int] | None = None,
                   described: str | None = None) -> np.ndarray:
    """Heatmap of an aligner's running plan ``[Ls, Lt]`` (``averaged``: the exponential average of the plans seen in
    training; else a fixed map): rows are student layers, columns teacher layers (both 1-based: 0 would be the
    embeddings). The colour scale is 0..1, a row's weights summing to 1, so a uniform plan looks dark beside a
    confident one; a plan with NaN or inf says so in its title. ``held``: the plans the running mean holds and the
    weight the starting map still has in it (an early plan reads as a confident one otherwise). ``started``: the
    teacher layer (1-based) each student layer was copied from, outlined (a plan on them may be the copy's likeness,
    not a match the costs found). ``described``: which fixed map it is, or what else than the costs moves a running
    plan (``order prior 1``), in the title. Saved to ``path``;
    returns the picture's pixels (``[H, W, 3]`` uint8, for TensorBoard)."""
    p = plan.float().numpy()
    n_s, n_t = p.shape
    fig = Figure(figsize=(max(4.0, 1.6 + 0.5 * n_t), max(2.6, 1.4 + 0.45 * n_s)))
    ax = fig.add_subplot()
    im = ax.imshow(p, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(n_t), [str(i + 1) for i in range(n_t)])
    ax.set_yticks(range(n_s), [str(i + 1) for i in range(n_s)])
    # (1-based, as alignment.json's rows and columns: a model card's layer ids count from 0)
    ax.set_xlabel("teacher layer (1-based)")
    ax.set_ylabel("student layer (1-based)")
    broken = int((~np.isfinite(p)).sum())
    # the plan drawn is an average: after a few steps it is still mostly the one-hot map it starts from
    title += f"\n{described}" if described and averaged else ""  # (what else than the costs moved the plan)
    title += f"\n{described or 'fixed map'}" if not averaged else (
        "\nrunning mean of the plans in training") if held is None else (
        f"\nrunning mean of {held[0]} plan{'s' if held[0] != 1 else ''} in training"
        + (f"; the starting map still weighs {held[1]:.0%}" if held[1] >= 0.005 else ""))
    if started is not None:
        for i, j in enumerate(started):
            # (inset: on a cell at the edge the axes' frame hid two of its sides)
            ax.add_patch(Rectangle((j - 1.44, i - 0.44), 0.88, 0.88, fill=False, edgecolor="red", lw=1.5, ls="--"))
        title += "\nred dashes: the teacher layer each student layer was copied from"
    title += "" if not broken else f"\n{broken} of {p.size} weights are not finite (NaN or inf)"
    ax.set_title(title, fontsize=9, color="black" if not broken else "darkred")
    # every weight that shows at two decimals (a row's numbers summed to 0.97 where cells under 0.05 went
    # unnumbered); a non-finite cell is blank: name it
    for i, j in zip(*np.nonzero((p >= 0.005) | ~np.isfinite(p))):
        light = not np.isfinite(p[i, j]) or p[i, j] > 0.5  # viridis is dark below about 0.5; a blank cell white
        ax.text(j, i, f"{p[i, j]:.2f}", ha="center", va="center", fontsize=7, color="black" if light else "white")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="plan weight (a row sums to 1)")
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=120, bbox_inches="tight")
    Path(path).write_bytes(png.getvalue())
    png.seek(0)
    return (image.imread(png, format="png")[..., :3] * 255).round().astype(np.uint8)  # the file's picture, as is
