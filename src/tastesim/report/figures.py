"""The report's figures as PNG files: drift curves, category stream, per-segment panels, arm comparison.

Each function takes runs as ``{label: RunData}`` (one entry for a single run, one per arm) and writes one
PNG; the HTML report embeds the same files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tastesim.world.drift_metrics import DRIFT_METRICS

__all__ = ["RunData", "arms_figure", "category_stream", "drift_curves", "load_run", "segment_panels"]

_CURVES = tuple(m for m in DRIFT_METRICS if m not in ("agents", "centroid_step"))
_SEGMENT_METRICS = ("filter_bubble", "centroid_shift", "consumption_entropy", "like_rate")
_TOP_CATEGORIES = 11  # categories drawn in the stream; the rest are pooled as "other"


@dataclass(frozen=True)
class RunData:
    """A finished run's tables."""

    folder: Path
    summary: dict
    drift: pd.DataFrame
    categories: pd.DataFrame


def load_run(folder: Path) -> RunData:
    """Read a run folder's summary, drift and category tables."""
    return RunData(
        folder,
        json.loads((folder / "summary.json").read_text(encoding="utf-8")),
        pd.read_parquet(folder / "drift.parquet"),
        pd.read_parquet(folder / "categories.parquet"),
    )


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def drift_curves(runs: dict[str, RunData], path: Path) -> Path:
    """Whole-population drift metrics over steps, one line per run."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 4, figsize=(15, 6.4), constrained_layout=True)
    for ax, metric in zip(axes.ravel(), _CURVES, strict=True):
        for label, run in runs.items():
            rows = run.drift[run.drift["attribute"] == "all"]
            ax.plot(rows["step"], rows[metric], label=label, linewidth=1.6)
        ax.set_title(metric.replace("_", " "))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes.ravel()[0].legend(fontsize=8)
    fig.suptitle("Interest drift (whole population)")
    return _save(fig, path)


def category_stream(runs: dict[str, RunData], path: Path) -> Path:
    """Share of clicks per category over steps (stacked), one panel per run."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(runs), figsize=(5.2 * len(runs), 3.8), constrained_layout=True, squeeze=False)
    first = next(iter(runs.values())).categories
    top = first.groupby("category")["clicks"].sum().nlargest(_TOP_CATEGORIES).index.tolist()
    for ax, (label, run) in zip(axes[0], runs.items(), strict=True):
        wide = run.categories.pivot_table(index="step", columns="category", values="clicks", aggfunc="sum")
        wide = wide.reindex(columns=[*top, *[c for c in wide.columns if c not in top]], fill_value=0)
        shown = wide[top].assign(other=wide.drop(columns=top).sum(axis=1))
        share = shown.div(shown.sum(axis=1).where(lambda s: s > 0, 1), axis=0)
        colours = plt.get_cmap("tab20").colors[: share.shape[1]]
        ax.stackplot(share.index, share.T.to_numpy(), labels=share.columns, colors=colours, alpha=0.9)
        ax.set_title(f"{label}: share of clicks by category")
        ax.set_xlabel("step")
        ax.set_ylim(0, 1)
        ax.margins(x=0)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(fig, path)


def segment_panels(run: RunData, label: str, path: Path) -> Path | None:
    """Per segment attribute (rows) and metric (columns), one line per segment; ``None`` without segments."""
    segments = run.drift[run.drift["attribute"] != "all"]
    attributes = list(dict.fromkeys(segments["attribute"]))
    if not attributes:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(attributes),
        len(_SEGMENT_METRICS),
        figsize=(15, 2.9 * len(attributes)),
        constrained_layout=True,
        squeeze=False,
    )
    for row, attribute in zip(axes, attributes, strict=True):
        rows = segments[segments["attribute"] == attribute]
        for ax, metric in zip(row, _SEGMENT_METRICS, strict=True):
            for value, group in rows.groupby("segment", sort=True):
                ax.plot(group["step"], group[metric], label=str(value), linewidth=1.3)
            ax.set_title(f"{attribute}: {metric.replace('_', ' ')}", fontsize=10)
            ax.grid(alpha=0.3)
        row[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"{label}: drift by segment")
    return _save(fig, path)


def arms_figure(table: pd.DataFrame, columns: tuple[str, ...], path: Path) -> Path:
    """Bar charts of headline figures, one bar per arm."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(columns), figsize=(2.6 * len(columns), 3.2), constrained_layout=True)
    for ax, column in zip(axes, columns, strict=True):
        ax.bar(table["arm"], table[column], color=[f"C{i}" for i in range(len(table))])
        ax.set_title(column.replace("_", " "), fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.suptitle("Arms compared")
    return _save(fig, path)
