"""A diversity-aware re-ranker: item-kNN candidates re-ordered by maximal marginal relevance (MMR).

For each agent the item-kNN recommender proposes a pool of ``pool_factor * k`` candidates; the slate is
then built greedily, each time taking the candidate with the best

    (1 - diversity) * relevance - diversity * max cosine to the items already chosen

where relevance is the kNN score scaled to [0, 1] within the agent's pool and cosine is between item
content vectors (the mean of each item's like-reason embeddings). ``diversity = 0`` is plain item-kNN.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tastesim.recommenders.base import Feedback, SlateRequest
from tastesim.recommenders.baselines import ItemKNNRecommender

__all__ = ["DIVERSITY", "DiversityReranker"]

DIVERSITY = 0.5  # weight of redundancy against relevance in the MMR objective
POOL_FACTOR = 5  # candidates per slate position taken from item-kNN


class DiversityReranker:
    """MMR re-ranking of item-kNN candidates over item content vectors (see module docstring).

    Args:
        item_vectors: Unit content vector per item ``(n_items, d)``.
        neighbours: Item-kNN neighbours per item.
        diversity: MMR trade-off in [0, 1].
        pool_factor: Candidates per slate position.
    """

    name = "diverse"

    def __init__(
        self,
        item_vectors: np.ndarray,
        neighbours: int = 50,
        diversity: float = DIVERSITY,
        pool_factor: int = POOL_FACTOR,
    ) -> None:
        if not 0.0 <= diversity <= 1.0:
            raise ValueError(f"diversity must be in [0, 1], got {diversity}")
        self.vectors = np.asarray(item_vectors, dtype=np.float32)
        self.diversity = diversity
        self.pool_factor = pool_factor
        self.base = ItemKNNRecommender(neighbours)

    def fit(self, interactions: sp.csr_matrix, rng: np.random.Generator) -> None:
        """Fit the item-kNN candidate generator."""
        self.base.fit(interactions, rng)

    def observe(self, feedback: Feedback) -> None:
        """Nothing to keep between refits."""

    def recommend(self, request: SlateRequest) -> np.ndarray:
        """Candidates from item-kNN, then greedy MMR per agent (batched over agents)."""
        pool = self.base.recommend(
            SlateRequest(
                request.agents,
                request.history,
                request.blocked,
                request.k * self.pool_factor,
                request.step,
                request.rng,
            )
        )
        return self.rerank(pool, self._relevance(request, pool), request.k)

    def _relevance(self, request: SlateRequest, pool: np.ndarray) -> np.ndarray:
        rows = np.arange(len(pool))[:, None]
        scores = np.zeros(pool.shape, dtype=np.float64)
        for start in range(0, len(pool), 4096):
            block = slice(start, start + 4096)
            dense = (request.history[block] @ self.base.similarity).toarray() + self.base.popularity
            scores[block] = dense[rows[block] - start, np.where(pool[block] >= 0, pool[block], 0)]
        top = scores.max(axis=1, keepdims=True)
        return np.where(pool >= 0, scores / np.where(top > 0, top, 1.0), -np.inf)

    def rerank(self, pool: np.ndarray, relevance: np.ndarray, k: int) -> np.ndarray:
        """Greedy MMR over each row's ``pool`` (``-1`` = empty) with ``relevance`` in [0, 1]."""
        n, width = pool.shape
        vecs = self.vectors[np.where(pool >= 0, pool, 0)]  # (n, P, d)
        redundancy = np.zeros((n, width))
        available = pool >= 0
        rows = np.arange(n)
        slates = np.full((n, k), -1, dtype=np.int64)
        for position in range(min(k, width)):
            objective = (1 - self.diversity) * relevance - self.diversity * redundancy
            objective = np.where(available, objective, -np.inf)
            best = objective.argmax(axis=1)
            has = available[rows, best]
            slates[has, position] = pool[rows, best][has]
            available[rows, best] = False
            similarity = np.einsum("npd,nd->np", vecs, vecs[rows, best])
            redundancy = np.where(has[:, None], np.maximum(redundancy, similarity), redundancy)
        return slates
