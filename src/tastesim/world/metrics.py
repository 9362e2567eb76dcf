"""Per-step metrics: every DataCollector use of tastesim lives here."""

from __future__ import annotations

from dataclasses import dataclass, field

import mesa
import numpy as np

from tastesim.catalog import Decisions
from tastesim.world.drift_metrics import entropy_bits

__all__ = ["METRICS", "StepMetrics", "make_collector"]

METRICS = (
    "active_agents",
    "shown",
    "clicks",
    "likes",
    "dislikes",
    "click_rate",
    "like_rate",
    "coverage",
    "cumulative_coverage",
    "category_entropy",
    "novelty",
    "holdout_hit_rate",
    "memories",
    "new_memories",
)


def _entropy_bits(labels: np.ndarray) -> float:
    """Entropy in bits of the labels' frequencies (0 for none)."""
    return float(entropy_bits(np.bincount(labels))) if labels.size else 0.0


@dataclass
class StepMetrics:
    """Computes one step's figures; keeps the running set of items ever shown."""

    n_items: int
    primary_category: np.ndarray
    self_information: np.ndarray  # -log2(share of training users who consumed the item)
    shown_ever: np.ndarray = field(init=False)
    last: dict[str, float] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.shown_ever = np.zeros(self.n_items, dtype=bool)

    def measure(
        self, slates: np.ndarray, decisions: Decisions, holdout_hits: int, memories: int, new_memories: int
    ) -> dict[str, float]:
        """Figures for one step (stored in :attr:`last` for the DataCollector)."""
        shown_mask = slates >= 0
        shown_items = slates[shown_mask]
        self.shown_ever[shown_items] = True
        n_shown = int(shown_mask.sum())
        clicks, likes = int(decisions.click.sum()), int(decisions.like.sum())
        clicked = slates[decisions.click]
        self.last = {
            "active_agents": float(len(slates)),
            "shown": float(n_shown),
            "clicks": float(clicks),
            "likes": float(likes),
            "dislikes": float(decisions.dislike.sum()),
            "click_rate": clicks / n_shown if n_shown else 0.0,
            "like_rate": likes / clicks if clicks else 0.0,
            "coverage": np.unique(shown_items).size / self.n_items,
            "cumulative_coverage": float(self.shown_ever.mean()),
            "category_entropy": _entropy_bits(self.primary_category[clicked]),
            "novelty": float(self.self_information[shown_items].mean()) if n_shown else 0.0,
            "holdout_hit_rate": holdout_hits / n_shown if n_shown else 0.0,
            "memories": float(memories),
            "new_memories": float(new_memories),
        }
        return self.last


def make_collector(metrics: StepMetrics) -> mesa.DataCollector:
    """A DataCollector whose model reporters read the step's figures."""
    return mesa.DataCollector(model_reporters={name: (lambda _m, n=name: metrics.last[n]) for name in METRICS})
