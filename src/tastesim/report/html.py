"""``report.html``: one self-contained page per run folder (PNG figures inlined; no network, no scripts).

A run folder gives the headline figures, drift curves, category stream and per-segment panels; an arms
folder (``summary.json`` with ``arms``) gives the same for every arm side by side plus the comparison.
The PNGs are also kept in ``plots/report/``.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from tastesim.paths import atomic_write_text
from tastesim.report.comparison import comparison_table
from tastesim.report.figures import RunData, arms_figure, category_stream, drift_curves, load_run, segment_panels
from tastesim.world.drift_metrics import METRIC_HELP

__all__ = ["ReportError", "write_report"]

_HEADLINE = (
    "recommender",
    "agents",
    "steps",
    "click_rate",
    "like_rate",
    "final_cumulative_coverage",
    "mean_category_entropy",
    "mean_novelty",
)
_ARM_BARS = (
    "like_rate",
    "final_cumulative_coverage",
    "mean_intra_list_distance",
    "mean_exposure_gini",
    "final_centroid_shift",
    "final_filter_bubble",
)
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1500px;color:#1d2330;
padding:0 1rem}h1{margin-bottom:.2rem}h2{border-bottom:1px solid #d8dde6;padding-bottom:.3rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #d8dde6;padding:.3rem .6rem;text-align:right}
th{background:#f2f4f8}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eef0f4}
.muted{color:#667085}dt{font-weight:600;margin-top:.4rem}dd{margin-left:1rem}
"""


class ReportError(ValueError):
    """The folder holds no finished run."""


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))


def _table(columns: dict[str, dict], rows: list[str]) -> str:
    """Figures as rows, runs as columns."""
    head = "<th>figure</th>" + "".join(f"<th>{html.escape(name)}</th>" for name in columns)
    body = "".join(
        f"<tr><td>{html.escape(row.replace('_', ' '))}</td>"
        + "".join(f"<td>{_fmt(values.get(row, ''))}</td>" for values in columns.values())
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(path: Path | None, alt: str) -> str:
    if path is None:
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


def _headline(runs: dict[str, RunData]) -> dict[str, dict]:
    return {label: {**run.summary, **run.summary.get("drift", {})} for label, run in runs.items()}


def write_report(folder: Path) -> Path:
    """(Re)build ``folder/report.html`` and ``folder/plots/*.png`` from a finished run or arms folder.

    Raises:
        ReportError: ``folder`` has no ``summary.json`` (the run has not finished).
    """
    folder = Path(folder)
    if not (folder / "summary.json").is_file():
        raise ReportError(f"{folder} holds no finished run (no summary.json); finish or resume it first")
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    arms = summary.get("arms")
    for run_folder in [folder / name for name in arms] if arms else [folder]:
        if not (run_folder / "drift.parquet").is_file():
            raise ReportError(f"{run_folder} has no drift.parquet (a conversation run? its report is report.json)")
    runs = {name: load_run(folder / name) for name in arms} if arms else {summary["recommender"]: load_run(folder)}
    plots = folder / "plots" / "report"
    sections = [f"<h2>Headline figures</h2>{_table(_headline(runs), [*_HEADLINE, *_drift_keys(runs)])}"]
    if arms:
        table = comparison_table(arms)
        bars = tuple(c for c in _ARM_BARS if c in table.columns)
        sections.append(f"<h2>Arms compared</h2>{_img(arms_figure(table, bars, plots / 'arms.png'), 'arms')}")
    sections.append(f"<h2>Drift curves</h2>{_img(drift_curves(runs, plots / 'drift.png'), 'drift curves')}")
    sections.append(
        f"<h2>Category stream</h2>{_img(category_stream(runs, plots / 'categories.png'), 'category stream')}"
    )
    panels = "".join(
        _img(segment_panels(run, label, plots / f"segments-{label}.png"), f"segments of {label}")
        for label, run in runs.items()
    )
    if panels:
        sections.append(f"<h2>Segments</h2>{panels}")
    help_items = "".join(
        f"<dt>{html.escape(k.replace('_', ' '))}</dt><dd>{html.escape(v)}</dd>" for k, v in METRIC_HELP.items()
    )
    sections.append(f"<h2>What the metrics mean</h2><dl>{help_items}</dl>")
    title = html.escape(f"tastesim report: {summary['scenario']}")
    subtitle = html.escape(f"seed {summary['seed']}, {summary['steps']} steps, {summary['agents']} agents")
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<style>{_STYLE}</style></head><body><h1>{title}</h1><p class="muted">{subtitle}</p>'
        + "".join(sections)
        + "</body></html>\n"
    )
    path = folder / "report.html"
    atomic_write_text(path, page)
    return path


def _drift_keys(runs: dict[str, RunData]) -> list[str]:
    return list(next(iter(runs.values())).summary.get("drift", {}))
