"""A sequential recommender: the project's SASRec (:mod:`tastesim.scoring.statistical`) as a next-item model.

It learns from each user's interactions *in order* and recommends the items its interaction head scores
highest after the agent's sequence. The recommender protocol passes histories as matrices, which carry no
order, so the order comes from ``sequences`` (each agent's training items in time order, as
``tastesim eval agreement`` gives them); without them, a row's items are taken in catalog order. Either way,
what an agent clicks during a run is appended in step order (``observe``), and a refit learns it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from tastesim.recommenders.base import Feedback, ScoreRecommender, SlateRequest

__all__ = ["SequentialRecommender"]


class SequentialRecommender(ScoreRecommender):
    """SASRec next-item scores over the agent's sequence (see module docstring).

    Args:
        sequences: Per agent, its training items in time order (and optionally whether each was liked).
        dim: Hidden size of the model.
        epochs: Training epochs per fit.
        max_len: Items of a sequence the model reads (the latest).
    """

    name = "sasrec"

    def __init__(
        self,
        sequences: Sequence[np.ndarray | tuple[np.ndarray, np.ndarray]] | None = None,
        *,
        dim: int = 32,
        epochs: int = 10,
        max_len: int = 50,
    ) -> None:
        self.sequences = None if sequences is None else [_pair(s) for s in sequences]
        self.dim, self.epochs, self.max_len = dim, epochs, max_len
        self._observed: dict[int, list[tuple[int, int]]] = {}
        self._model = None

    def fit(self, interactions: sp.csr_matrix, rng: np.random.Generator) -> None:
        """Train on the agents' sequences (plus what they clicked so far); without ``sequences``, on the
        rows of ``interactions`` in catalog order."""
        import torch

        from tastesim.scoring.statistical import StatSettings, fit_sasrec

        n_items = interactions.shape[1]
        if self.sequences is not None:
            training = [self._sequence(agent, None) for agent in range(len(self.sequences))]
        else:
            rows = sp.csr_matrix(interactions)
            training = [
                (rows.indices[rows.indptr[r] : rows.indptr[r + 1]], np.ones(rows.indptr[r + 1] - rows.indptr[r]))
                for r in range(rows.shape[0])
            ]
        training = [(np.asarray(i, dtype=np.int64), np.asarray(lk, dtype=np.int64)) for i, lk in training]
        settings = StatSettings(dim=self.dim, epochs=self.epochs, max_len=self.max_len)
        generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        self._model = fit_sasrec(training, n_items, settings, generator)

    def observe(self, feedback: Feedback) -> None:
        """Append each agent's clicked items of the step (liked or not) to its sequence."""
        for row, agent in enumerate(feedback.agents.tolist()):
            clicked = feedback.click[row] & (feedback.slates[row] >= 0)
            items = feedback.slates[row][clicked].tolist()
            liked = feedback.like[row][clicked].astype(int).tolist()
            self._observed.setdefault(agent, []).extend(zip(items, liked, strict=True))

    def _sequence(self, agent: int, history: sp.csr_matrix | None) -> tuple[np.ndarray, np.ndarray]:
        if self.sequences is not None and agent < len(self.sequences):
            items, liked = self.sequences[agent]
        elif history is not None:
            items = history.indices[history.indptr[0] : history.indptr[1]]
            liked = np.ones(len(items), dtype=np.int64)
        else:
            items, liked = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        seen = self._observed.get(agent, [])
        if seen:
            extra = np.array(seen, dtype=np.int64)
            items, liked = np.concatenate([items, extra[:, 0]]), np.concatenate([liked, extra[:, 1]])
        return np.asarray(items, dtype=np.int64), np.asarray(liked, dtype=np.int64)

    def scores(self, request: SlateRequest, rows: slice) -> np.ndarray:
        from tastesim.scoring.statistical import stat_tables

        if self._model is None:
            raise RuntimeError("fit the recommender before asking for slates")
        agents = request.agents[rows]
        history = sp.csr_matrix(request.history[rows])
        seqs = [self._sequence(int(a), history[i]) for i, a in enumerate(agents)]
        tables = stat_tables(self._model, seqs, self.max_len)
        return tables.user_interact @ tables.item.T + tables.interact_bias


def _pair(sequence: np.ndarray | tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(sequence, tuple):
        return np.asarray(sequence[0], dtype=np.int64), np.asarray(sequence[1], dtype=np.int64)
    items = np.asarray(sequence, dtype=np.int64)
    return items, np.ones(len(items), dtype=np.int64)
