"""Choose the factorisations' sizes on the validation part (never on the test part).

The explicit factorisation is chosen by the like AUC of its predicted rating on the validation ratings,
the implicit ALS by its AUC at telling each validation item from one never-rated item; both are fitted on
the inner part, so the validation part plays the held-out future.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from tastesim.rng import RandomTree, Stream
from tastesim.scoring.biases import rating_biases
from tastesim.scoring.taste import TasteSettings, explicit_mf, implicit_als
from tastesim.scoring.views import PairSample

__all__ = ["ALS_GRID", "MF_GRID", "tune_taste"]

MF_GRID = ((16, 10.0), (32, 10.0), (32, 25.0), (64, 25.0))  # (factors, ridge)
ALS_GRID = ((32, 10.0), (64, 10.0), (32, 40.0))  # (factors, alpha)


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    from scipy.stats import rankdata

    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if not n_pos or not n_neg:
        return 0.5
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def tune_taste(
    inner: sp.csr_matrix, validation: PairSample, base: TasteSettings, like_threshold: float, seed: int
) -> tuple[TasteSettings, dict[str, float]]:
    """The taste settings with the best validation factorisations, and the validation AUC of each choice.

    ``inner`` is the inner part's users x items ratings; ``validation.agents`` are its rows.
    """
    coo = inner.tocoo()
    biases = rating_biases(inner)
    residual = coo.data - biases.mean - biases.user[coo.row] - biases.item[coo.col]
    users, items = validation.agents, validation.slates[:, 0]
    bias = biases.user[users] + biases.item[items]
    facts: dict[str, float] = {}
    best_mf = (-1.0, base.mf_factors, base.mf_reg)
    for index, (factors, ridge) in enumerate(MF_GRID):
        settings = replace(base, mf_factors=factors, mf_reg=ridge)
        rng = RandomTree(seed).generator(Stream.FACTORS, key=f"mf-{index}")
        p, q = explicit_mf(coo.row, coo.col, residual, inner.shape, settings=settings, rng=rng)
        score = _auc(bias + np.einsum("nd,nd->n", p[users], q[items]), validation.liked)
        facts[f"validation_mf_auc.{factors}x{ridge:g}"] = score
        best_mf = max(best_mf, (score, factors, ridge))
    pairs = validation.slates[:, :2]
    labels = np.tile(np.array([True, False]), len(pairs))
    best_als = (-1.0, base.als_factors, base.als_alpha)
    for index, (factors, alpha) in enumerate(ALS_GRID):
        settings = replace(base, als_factors=factors, als_alpha=alpha)
        rng = RandomTree(seed).generator(Stream.FACTORS, key=f"als-{index}")
        u, v = implicit_als(inner, settings, rng)
        score = _auc(np.einsum("nd,nkd->nk", u[users], v[pairs]).ravel(), labels)
        facts[f"validation_als_auc.{factors}x{alpha:g}"] = score
        best_als = max(best_als, (score, factors, alpha))
    chosen = replace(base, mf_factors=best_mf[1], mf_reg=best_mf[2], als_factors=best_als[1], als_alpha=best_als[2])
    return chosen, facts
