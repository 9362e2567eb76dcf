"""Shrunk user and item rating biases: the baseline every personal signal is measured against."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["Biases", "rating_biases"]

_SHRINK = 10.0  # pseudo-count pulling a bias towards 0


@dataclass(frozen=True)
class Biases:
    """Mean rating with shrunk user and item offsets: ``predicted = mean + user[u] + item[i]``."""

    mean: float
    user: np.ndarray  # (U,) per row of the rating matrix
    item: np.ndarray  # (I,)
    popularity: np.ndarray  # (I,) log(1 + raters)


def rating_biases(ratings: sp.csr_matrix) -> Biases:
    """Shrunk biases from a users x items rating matrix (0 = unrated)."""
    coo = ratings.tocoo()
    n_users, n_items = ratings.shape
    mean = float(coo.data.mean()) if coo.nnz else 0.0
    count_i = np.bincount(coo.col, minlength=n_items)
    item = np.bincount(coo.col, weights=coo.data - mean, minlength=n_items) / (count_i + _SHRINK)
    residual = coo.data - mean - item[coo.col]
    count_u = np.bincount(coo.row, minlength=n_users)
    user = np.bincount(coo.row, weights=residual, minlength=n_users) / (count_u + _SHRINK)
    return Biases(mean, user.astype(np.float32), item.astype(np.float32), np.log1p(count_i).astype(np.float32))
