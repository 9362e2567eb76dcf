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
        """Each agent's first ``k`` unblocked items in popularity order (what scoring every item would
        give), read from the head of the ranking: no agents x items score block, so memory stays bounded by
        the request itself at any population size."""
        k, n = request.k, len(request.agents)
        width = min(self.ranking.size, max(self._PREFIX, 4 * k))
        head = self.ranking[:width]
        free = ~request.blocked[:, head].astype(bool, copy=False)  # (n, width)
        picks = np.argsort(~free, axis=1, kind="stable")[:, :k]  # first k free positions, in rank order
        slates = np.where(np.take_along_axis(free, picks, axis=1), head[picks], -1)
        if slates.shape[1] < k:
            slates = np.pad(slates, ((0, 0), (0, k - slates.shape[1])), constant_values=-1)
        short = np.flatnonzero(free.sum(axis=1) < k)
        if short.size and width < self.ranking.size:  # heavy consumers: rank the whole catalog for them
            sub = SlateRequest(request.agents[short], request.history[short], request.blocked[short], k,
                               request.step, request.rng)  # fmt: skip
            slates[short] = super().recommend(sub)
        return slates.reshape(n, k)


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
