"""PNG plots of a run's per-step metrics."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["write_plots"]

_PANELS = (
    ("rates.png", "Click and like rate", ("click_rate", "like_rate")),
    ("coverage.png", "Catalog coverage", ("coverage", "cumulative_coverage")),
    ("diversity.png", "Category entropy of clicks (bits) and novelty", ("category_entropy", "novelty")),
    ("memory.png", "Working memories and new memories per step", ("memories", "new_memories")),
)


def write_plots(metrics: pd.DataFrame, folder: Path) -> list[Path]:
    """One PNG per panel into ``folder``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for filename, title, columns in _PANELS:
        fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.2), constrained_layout=True)
        for ax, column in zip(axes, columns, strict=True):
            ax.plot(metrics["step"], metrics[column], marker="o", markersize=3)
            ax.set_xlabel("step")
            ax.set_title(column.replace("_", " "))
            ax.grid(alpha=0.3)
        fig.suptitle(title)
        path = folder / filename
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
