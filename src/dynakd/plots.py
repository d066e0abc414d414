"""Pictures: the alignment plan as a labelled heatmap."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def plot_alignment(plan: torch.Tensor, path: Path, title: str = "alignment") -> None:
    """Heatmap of a plan ``[Ls, Lt]``: rows are student layers, columns teacher layers (both 1-based)."""
    p = plan.float().numpy()
    n_s, n_t = p.shape
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 + 0.5 * n_t), max(2.4, 1.2 + 0.45 * n_s)))
    im = ax.imshow(p, cmap="viridis", vmin=0.0, vmax=max(1e-6, float(p.max())), aspect="auto")
    ax.set_xticks(range(n_t), [str(i + 1) for i in range(n_t)])
    ax.set_yticks(range(n_s), [str(i + 1) for i in range(n_s)])
    ax.set_xlabel("teacher layer")
    ax.set_ylabel("student layer")
    ax.set_title(title, fontsize=9)
    for i in range(n_s):
        for j in range(n_t):
            if p[i, j] >= 0.05:
                ax.text(
                    j,
                    i,
                    f"{p[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if p[i, j] > 0.6 * p.max() else "white",
                )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="plan weight")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
