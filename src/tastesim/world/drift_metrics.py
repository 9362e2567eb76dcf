"""Drift metrics per step and per population segment, and the segment labels they are split by.

Every figure is computed for the whole population (segment ``all``) and for each value of each segment
attribute; one row per (step, attribute, segment):

* ``category_js_start`` / ``category_js_prev``: Jensen-Shannon divergence (bits, 0..1) of the segment's
  mean interest category distribution from step 0 / from the previous step.
* ``centroid_shift``: mean ``1 - cos`` between each agent's interest centroid and its step-0 centroid;
  ``centroid_step`` the same against the previous step.
* ``consumption_entropy``: entropy (bits) of the primary categories of the items clicked this step.
* ``intra_list_distance``: mean pairwise ``1 - cos`` of the items within a slate, averaged over slates.
* ``exposure_gini``: Gini coefficient of how often each catalog item was shown this step (1 = all
  exposure on one item).
* ``like_rate``: likes / clicks.
* ``filter_bubble``: mean over agents of ``1 - H(categories_t) / H(categories_0)``: how much each agent's
  interest distribution has narrowed since step 0 (0 = as broad as at the start, 1 = a single category).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tastesim.agents.drift import InterestState
from tastesim.agents.population import Population
from tastesim.catalog import Decisions

__all__ = [
    "DRIFT_METRICS",
    "METRIC_HELP",
    "DriftTracker",
    "drift_headline",
    "entropy_bits",
    "gini",
    "intra_list_distance",
    "js_divergence",
    "segment_labels",
]

DRIFT_METRICS = (
    "agents",
    "category_js_start",
    "category_js_prev",
    "centroid_shift",
    "centroid_step",
    "consumption_entropy",
    "intra_list_distance",
    "exposure_gini",
    "like_rate",
    "filter_bubble",
)
METRIC_HELP = {
    "category_js_start": "Jensen-Shannon divergence (bits) of the mean interest category distribution from step 0",
    "category_js_prev": "the same divergence from the previous step (how fast interests are moving now)",
    "centroid_shift": "mean 1 - cosine between each agent's interest centroid and its step-0 centroid",
    "centroid_step": "mean 1 - cosine between each agent's centroid and its previous-step centroid",
    "consumption_entropy": "entropy (bits) of the primary categories of the items clicked this step",
    "intra_list_distance": "mean pairwise 1 - cosine of the items within a slate (slate diversity)",
    "exposure_gini": "Gini coefficient of item exposure this step (1 = every impression on one item)",
    "like_rate": "likes / clicks",
    "filter_bubble": "mean over agents of 1 - H(interest categories now) / H(at step 0): narrowing of tastes",
}
_AGE_BANDS = ((0, "<25"), (25, "25-34"), (35, "35-49"), (50, "50+"))


def entropy_bits(p: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits along the last axis of (unnormalised) non-negative weights."""
    p = np.asarray(p, dtype=np.float64)
    total = p.sum(-1, keepdims=True)
    q = np.divide(p, total, out=np.zeros_like(p), where=total > 0)
    return -(q * np.log2(np.where(q > 0, q, 1.0))).sum(-1)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (bits, in [0, 1]) of two distributions (normalised here)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return 0.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    return float(max(entropy_bits(m) - (entropy_bits(p) + entropy_bits(q)) / 2, 0.0))


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0 = equal, -> 1 = all on one)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    if x.size == 0 or x.sum() <= 0:
        return 0.0
    ranks = np.arange(1, x.size + 1)
    return float((2 * (ranks * x).sum()) / (x.size * x.sum()) - (x.size + 1) / x.size)


def intra_list_distance(slates: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Per slate, mean pairwise ``1 - cos`` of its items (``-1`` slots ignored; NaN below two items)."""
    shown = slates >= 0
    v = vectors[np.where(shown, slates, 0)] * shown[..., None]
    sims = np.einsum("nsd,ntd->nst", v, v)
    pair = shown[:, :, None] & shown[:, None, :] & ~np.eye(slates.shape[1], dtype=bool)
    n_pairs = pair.sum((1, 2))
    dist = ((1 - sims) * pair).sum((1, 2))
    return np.where(n_pairs > 0, dist / np.maximum(n_pairs, 1), np.nan)


def segment_labels(population: Population, by: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per attribute, the segment of each agent: ``age`` in bands, ``activity`` as training-size terciles
    (light, medium, heavy), anything else the user attribute's value (``unknown`` when missing)."""
    labels: dict[str, np.ndarray] = {}
    for attribute in by:
        if attribute == "activity":
            size = np.diff(population.train.indptr)[population.user_rows]
            cuts = np.quantile(size, [1 / 3, 2 / 3]) if size.size else np.zeros(2)
            labels[attribute] = np.array(["light", "medium", "heavy"], dtype=object)[np.searchsorted(cuts, size)]
        elif attribute == "age":
            labels[attribute] = np.array([_age_band(s.get("age")) for s in population.segments], dtype=object)
        else:
            labels[attribute] = np.array([s.get(attribute, "unknown") for s in population.segments], dtype=object)
    return labels


def _age_band(value: str | None) -> str:
    if value is None or not value.strip().isdigit():
        return "unknown"
    age = int(value)
    return [name for low, name in _AGE_BANDS if age >= low][-1]


@dataclass
class DriftTracker:
    """Computes and keeps the drift rows of every step (checkpointed as JSON)."""

    labels: dict[str, np.ndarray]
    primary: np.ndarray
    vectors: np.ndarray
    categories: list[str]
    rows: list[dict] = field(default_factory=list)
    stream: list[list[float]] = field(default_factory=list)  # clicks per category per step

    def measure(
        self,
        step: int,
        active: np.ndarray,
        slates: np.ndarray,
        decisions: Decisions,
        *,
        before: InterestState,
        after: InterestState,
    ) -> None:
        """Record step ``step``: ``before``/``after`` are the states around this step's update."""
        n_items = self.vectors.shape[0]
        clicked_cats = np.where(decisions.click, self.primary[np.where(slates >= 0, slates, 0)], -1)
        self.stream.append(np.bincount(clicked_cats[clicked_cats >= 0], minlength=len(self.categories)).tolist())
        ild = intra_list_distance(slates, self.vectors)
        c_now, c_prev = after.centroid(), before.centroid()
        h0 = entropy_bits(after.initial_categories)
        narrowing = np.where(h0 > 0, 1 - entropy_bits(after.categories) / np.where(h0 > 0, h0, 1), np.nan)
        groups = [("all", "all", np.ones(len(active), dtype=bool), np.ones(after.mass.shape[0], dtype=bool))]
        for attribute, label in self.labels.items():
            for value in sorted(set(label)):
                groups.append((attribute, value, label[active] == value, label == value))
        for attribute, value, in_step, members in groups:
            s, dec = slates[in_step], (decisions.click[in_step], decisions.like[in_step])
            shown = s[s >= 0]
            clicks, likes = int(dec[0].sum()), int(dec[1].sum())
            cats = clicked_cats[in_step]
            self.rows.append(
                {
                    "step": step,
                    "attribute": attribute,
                    "segment": value,
                    "agents": int(in_step.sum()),
                    "category_js_start": js_divergence(
                        after.categories[members].mean(0), after.initial_categories[members].mean(0)
                    ),
                    "category_js_prev": js_divergence(
                        after.categories[members].mean(0), before.categories[members].mean(0)
                    ),
                    "centroid_shift": _mean(1 - (c_now[members] * after.initial[members]).sum(-1)),
                    "centroid_step": _mean(1 - (c_now[members] * c_prev[members]).sum(-1)),
                    "consumption_entropy": float(entropy_bits(np.bincount(cats[cats >= 0], minlength=1))),
                    "intra_list_distance": _mean(ild[in_step]),
                    "exposure_gini": gini(np.bincount(shown, minlength=n_items)),
                    "like_rate": likes / clicks if clicks else 0.0,
                    "filter_bubble": _mean(narrowing[members]),
                }
            )

    def frame(self) -> pd.DataFrame:
        """Every row so far: one per (step, attribute, segment)."""
        return pd.DataFrame(self.rows, columns=["step", "attribute", "segment", *DRIFT_METRICS])

    def stream_frame(self) -> pd.DataFrame:
        """Clicks per (step, category) so far, long format."""
        counts = np.asarray(self.stream, dtype=np.int64).reshape(-1, len(self.categories))
        steps = np.arange(1, counts.shape[0] + 1)
        return pd.DataFrame(
            {
                "step": np.repeat(steps, len(self.categories)),
                "category": np.tile(np.asarray(self.categories, dtype=object), counts.shape[0]),
                "clicks": counts.ravel(),
            }
        )

    def state(self) -> np.ndarray:
        """The rows as one JSON string array (for the checkpoint)."""
        return np.array(json.dumps({"rows": self.rows, "stream": self.stream}))

    def restore(self, value: np.ndarray) -> None:
        """Inverse of :meth:`state`."""
        data = json.loads(str(value))
        self.rows, self.stream = data["rows"], data["stream"]


def _mean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else 0.0


def drift_headline(frame: pd.DataFrame) -> dict[str, float]:
    """The run's drift figures for the whole population: final divergence, shift and narrowing; mean
    intra-list distance, exposure Gini and like rate (consumption entropy is the summary's category entropy)."""
    rows = frame[frame["attribute"] == "all"]
    if rows.empty:
        return {}
    last = rows.iloc[-1]
    return {
        "final_category_js_start": float(last["category_js_start"]),
        "final_centroid_shift": float(last["centroid_shift"]),
        "final_filter_bubble": float(last["filter_bubble"]),
        "mean_intra_list_distance": float(rows["intra_list_distance"].mean()),
        "mean_exposure_gini": float(rows["exposure_gini"].mean()),
        "mean_like_rate": float(rows["like_rate"].mean()),
    }
