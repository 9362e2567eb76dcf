"""The arms of a run side by side: the figures compared and the comparison table."""

from __future__ import annotations

import pandas as pd

__all__ = ["COMPARED", "comparison_table"]

COMPARED = (
    "recommender",
    "click_rate",
    "like_rate",
    "final_cumulative_coverage",
    "mean_category_entropy",
    "mean_novelty",
    "holdout_hit_rate",
)


def comparison_table(summaries: dict[str, dict]) -> pd.DataFrame:
    """One row per arm: the headline figures and the drift headline of each arm's summary."""
    rows = []
    for name, summary in summaries.items():
        rows.append({"arm": name, **{k: summary[k] for k in COMPARED}, **summary.get("drift", {})})
    return pd.DataFrame(rows)
