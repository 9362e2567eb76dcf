"""Recommenders under test: a batched protocol and the baselines (random, most-popular, item-kNN).

A recommender receives one :class:`SlateRequest` per step for all acting agents and returns a slate per
agent. Items an agent may not see (already consumed, unless the scenario allows repeats) arrive as a
boolean ``blocked`` matrix; the baselines never return blocked items, and the model drops any blocked item
a custom recommender returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

__all__ = [
    "ItemKNNRecommender",
    "PopularityRecommender",
    "RandomRecommender",
    "Recommender",
    "SlateRequest",
    "make_recommender",
]

_ROWS = 4096  # agents scored at once (bounds the dense score block)


@dataclass(frozen=True)
class SlateRequest:
    """What the recommender is asked for one step.

    Attributes:
        agents: Agent indices, shape ``(n,)``.
        history: CSR matrix ``(n, n_items)`` of each agent's consumed items (value = recency weight).
        blocked: Bool matrix ``(n, n_items)`` of items not to return.
        k: Slate size.
        step: Simulation step.
        rng: Generator for this step (seeded by the model).
    """

    agents: np.ndarray
    history: sp.csr_matrix
    blocked: np.ndarray
    k: int
    step: int
    rng: np.random.Generator


@runtime_checkable
class Recommender(Protocol):
    """Anything that turns a :class:`SlateRequest` into slates ``(n, k)`` of item indices (``-1`` = none)."""

    name: str

    def fit(self, interactions: sp.csr_matrix) -> None:
        """Learn from the training interactions ``(n_users, n_items)`` before the run."""
        ...

    def recommend(self, request: SlateRequest) -> np.ndarray:
        """Return slates for every agent in the request."""
        ...


def top_k_unblocked(scores: np.ndarray, blocked: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best unblocked scores per row, best first (``-1`` pads rows with fewer)."""
    scores = np.where(blocked, -np.inf, scores)
    k_eff = min(k, scores.shape[1])
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    order = np.take_along_axis(scores, part, axis=1)
    ranked = np.take_along_axis(part, np.argsort(-order, axis=1, kind="stable"), axis=1)
    ranked = np.where(np.isfinite(np.take_along_axis(scores, ranked, axis=1)), ranked, -1)
    if k_eff < k:
        ranked = np.pad(ranked, ((0, 0), (0, k - k_eff)), constant_values=-1)
    return ranked


class _ScoreRecommender:
    """Shared batching: subclasses give a dense score block for a slice of the request."""

    name = "base"

    def recommend(self, request: SlateRequest) -> np.ndarray:
        """Score in row blocks and keep the top ``k`` unblocked items."""
        out = []
        for start in range(0, len(request.agents), _ROWS):
            rows = slice(start, start + _ROWS)
            out.append(top_k_unblocked(self._scores(request, rows), request.blocked[rows], request.k))
        return np.concatenate(out) if out else np.zeros((0, request.k), dtype=np.int64)

    def _scores(self, request: SlateRequest, rows: slice) -> np.ndarray:
        raise NotImplementedError


class RandomRecommender(_ScoreRecommender):
    """Uniformly random unconsumed items."""

    name = "random"

    def fit(self, interactions: sp.csr_matrix) -> None:
        """Learns nothing; remembers the catalog size."""
        self.n_items = interactions.shape[1]

    def _scores(self, request: SlateRequest, rows: slice) -> np.ndarray:
        return request.rng.random((len(request.agents[rows]), self.n_items))


class PopularityRecommender(_ScoreRecommender):
    """Most-interacted items of the training data (ties by item index)."""

    name = "popularity"

    def fit(self, interactions: sp.csr_matrix) -> None:
        """Count interactions per item."""
        counts = np.asarray((interactions > 0).sum(axis=0)).ravel().astype(np.float64)
        self.popularity = counts - np.arange(counts.size) * 1e-9  # stable tie order

    def _scores(self, request: SlateRequest, rows: slice) -> np.ndarray:
        return np.broadcast_to(self.popularity, (len(request.agents[rows]), self.popularity.size))


class ItemKNNRecommender(_ScoreRecommender):
    """Item-kNN on co-occurrence: cosine between item columns, ``neighbours`` kept per item.

    An agent's scores are the history-weighted sum of similarities of its consumed items; agents with
    no history fall back to popularity.
    """

    name = "itemknn"

    def __init__(self, neighbours: int = 50) -> None:
        self.neighbours = neighbours

    def fit(self, interactions: sp.csr_matrix) -> None:
        """Build the sparse item-item cosine matrix."""
        binary = (interactions > 0).astype(np.float32).tocsc()
        norms = np.sqrt(np.asarray(binary.multiply(binary).sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        scaled = binary @ sp.diags(1.0 / norms)
        sim = (scaled.T @ scaled).toarray()
        np.fill_diagonal(sim, 0.0)
        if self.neighbours < sim.shape[1]:
            cut = np.argpartition(-sim, self.neighbours, axis=1)[:, self.neighbours :]
            np.put_along_axis(sim, cut, 0.0, axis=1)
        self.similarity = sp.csr_matrix(sim.astype(np.float32))
        counts = np.asarray(binary.sum(axis=0)).ravel()
        self.popularity = (counts / max(counts.max(), 1.0)) * 1e-3

    def _scores(self, request: SlateRequest, rows: slice) -> np.ndarray:
        scores = (request.history[rows] @ self.similarity).toarray()
        return scores + self.popularity  # popularity breaks ties and serves empty histories


def make_recommender(name: str, **options: int) -> Recommender:
    """Build a baseline by scenario name."""
    factories = {"random": RandomRecommender, "popularity": PopularityRecommender, "itemknn": ItemKNNRecommender}
    if name not in factories:
        raise ValueError(f"unknown recommender {name!r}; choose one of {', '.join(factories)}")
    return factories[name](**options)
