"""Matrix factorisation: implicit-feedback ALS from the ``implicit`` library (Hu, Koren and Volinsky, 2008).

Item factors are learned from the fitting matrix (the training users, plus one row per agent of simulated
feedback when refitted); an agent's factors are solved from its own consumption history at recommendation
time (implicit's ``recalculate_user``), so agents never seen in fitting, and agents whose history grew since
the last fit, are scored from what they consumed. Seeded from the fit's generator; single-threaded, so a
fit is reproducible.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tastesim.recommenders.base import ScoreRecommender, SlateRequest

__all__ = ["MatrixFactorisation"]


class MatrixFactorisation(ScoreRecommender):
    """ALS matrix factorisation over implicit feedback.

    Args:
        factors: Latent dimensions.
        regularization: L2 weight of the factors.
        alpha: Confidence per unit of interaction weight (``1 + alpha * weight``).
        iterations: ALS sweeps per fit.
    """

    name = "mf"

    def __init__(self, factors: int = 64, regularization: float = 0.05, alpha: float = 2.0, iterations: int = 15):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self._model = None

    def fit(self, interactions: sp.csr_matrix, rng: np.random.Generator) -> None:
        """Learn item factors from ``interactions`` (weights = confidence)."""
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):  # one thread: reproducible, and no BLAS oversubscription
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=int(rng.integers(0, 2**31 - 1)),
                num_threads=1,
            )
            model.fit(sp.csr_matrix(interactions, dtype=np.float32), show_progress=False)
        self._model = model
        counts = np.asarray((interactions > 0).sum(axis=0)).ravel()
        self._tie = (counts / max(counts.max(), 1.0)) * 1e-6  # popularity breaks exact ties (empty histories)

    def scores(self, request: SlateRequest, rows: slice) -> np.ndarray:
        if self._model is None:
            raise RuntimeError("fit the recommender before asking for slates")
        history = sp.csr_matrix(request.history[rows] > 0, dtype=np.float32)
        users = self._model.recalculate_user(np.arange(history.shape[0]), history)
        return np.asarray(users) @ self._model.item_factors.T + self._tie
