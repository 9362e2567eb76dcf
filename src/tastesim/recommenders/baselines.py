"""The baseline recommenders: random, most-popular and item-kNN (see :mod:`tastesim.recommenders.base`)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tastesim.recommenders.base import ScoreRecommender, SlateRequest

__all__ = ["ItemKNNRecommender", "PopularityRecommender", "RandomRecommender"]


class RandomRecommender(ScoreRecommender):
    """Uniformly random unconsumed items."""

    name = "random"

    def fit(self, interactions: sp.csr_matrix, rng: np.random.Generator) -> None:
        """Learns nothing; remembers the catalog size."""
        self.n_items = interactions.shape[1]

    def scores(self, request: SlateRequest, rows: slice) -> np.ndarray:
        return request.rng.random((len(request.agents[rows]), self.n_items))


class PopularityRecommender(ScoreRecommender):
    """Most-interacted items of the training data (ties by item index)."""

    name = "popularity"
    _PREFIX = 64  # ranked items looked at first; rows with fewer than k unblocked among them score everything

    def fit(self, interactions: sp.csr_matrix, rng: np.random.Generator) -> None:
        """Count the rows that interacted with each item (real users, and agents' simulated clicks)."""
        counts = np.asarray((interactions > 0).sum(axis=0)).ravel().astype(np.float64)
        self.popularity = counts - np.arange(counts.size) * 1e-9  # stable tie order
        self.ranking = np.argsort(-self.popularity, kind="stable")

    def scores(self, request: SlateRequest, rows: slice) -> np.ndarray:
        return np.broadcast_to(self.popularity, (len(request.agents[rows]), self.popularity.size))

    def recommend(self, request: SlateRequest) -> np.ndarray:
        """Each agent's first ``k`` unblocked items in popularity order (what scoring every item would give),
        read from the head of the ranking, widened four times at a time for the agents that consumed most of
        it: no agents x items score block, so memory stays bounded by the request itself at any population."""
        k, n = request.k, len(request.agents)
        slates = np.full((n, k), -1, dtype=np.int64)
        rows = np.arange(n)
        width = min(self.ranking.size, max(self._PREFIX, 4 * k))
        while rows.size:
            head = self.ranking[:width]
            blocked = request.blocked[:, head] if rows.size == n else request.blocked[rows[:, None], head]
            free = ~blocked.astype(bool, copy=False)  # (rows, width)
            done = (free.sum(axis=1) >= k) | (width == self.ranking.size)
            picks = np.argsort(~free[done], axis=1, kind="stable")[:, :k]  # first k free positions, in rank order
            chosen = np.where(np.take_along_axis(free[done], picks, axis=1), head[picks], -1)
            slates[rows[done], : chosen.shape[1]] = chosen
            rows, width = rows[~done], min(self.ranking.size, width * 4)
        return slates


class ItemKNNRecommender(ScoreRecommender):
    """Item-kNN on co-occurrence: cosine between item columns, ``neighbours`` kept per item.

    An agent's scores are the history-weighted sum of similarities of its consumed items; agents with
    no history fall back to popularity.
    """

    name = "itemknn"

    def __init__(self, neighbours: int = 50) -> None:
        self.neighbours = neighbours

    def fit(self, interactions: sp.csr_matrix, rng: np.random.Generator) -> None:
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

    def scores(self, request: SlateRequest, rows: slice) -> np.ndarray:
        scores = (request.history[rows] @ self.similarity).toarray()
        return scores + self.popularity  # popularity breaks ties and serves empty histories
