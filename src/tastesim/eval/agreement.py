"""Sim-vs-real agreement: do the simulated users rank recommenders the way the real held-out data does?

Each recommender is fitted on the training part and ranked twice: by its real offline metric (hit rate and
NDCG@k of its first slate against each user's held-out liked items) and by the simulator (the same
recommender serving the simulated population from the same starting state: likes and clicks per slate).
The agreement is the rank correlation (Kendall tau, Spearman) between the two rankings, as SimUSER reports
it for sim-vs-real A/B tests.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau, spearmanr

__all__ = ["hit_and_ndcg", "rank_agreement"]


def hit_and_ndcg(slates: np.ndarray, relevant: list[np.ndarray]) -> tuple[float, float, int]:
    """Mean hit rate and NDCG of ``slates`` ``(n, k)`` (``-1`` = empty) over the rows with relevant items.

    Hit: at least one relevant item in the slate. NDCG: binary gains ``1/log2(position + 2)`` over the ideal
    ordering of ``min(k, relevant)`` relevant items.

    Returns:
        Hit rate, NDCG and the number of rows that had relevant items.
    """
    k = slates.shape[1]
    discount = 1.0 / np.log2(np.arange(k) + 2.0)
    hits, gains, counted = [], [], 0
    for slate, items in zip(slates, relevant, strict=True):
        if len(items) == 0:
            continue
        counted += 1
        found = np.isin(slate, items) & (slate >= 0)
        hits.append(found.any())
        ideal = discount[: min(k, len(items))].sum()
        gains.append(float((found * discount).sum() / ideal))
    if not counted:
        return float("nan"), float("nan"), 0
    return float(np.mean(hits)), float(np.mean(gains)), counted


def rank_agreement(real: dict[str, float], simulated: dict[str, float]) -> tuple[float, float]:
    """Kendall tau and Spearman correlation between two scorings of the same recommenders."""
    names = sorted(real)
    a = np.array([real[n] for n in names])
    b = np.array([simulated[n] for n in names])
    tau = kendalltau(a, b).statistic
    rho = spearmanr(a, b).statistic
    return float(tau), float(rho)
