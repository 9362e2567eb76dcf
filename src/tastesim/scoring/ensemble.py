"""The method's 2-of-3 vote and the learned combination (logistic regression on the feature vector)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tastesim.scoring.features import FEATURES
from tastesim.scoring.heads import Heads, HeadTargets, fit_heads

__all__ = ["fit_learned", "vote_score"]

_COL = {name: i for i, name in enumerate(FEATURES)}


def vote_score(x: np.ndarray, stat_threshold: float) -> np.ndarray:
    """Sum of the three like votes (each +1, 0 or -1), in ``[-3, 3]``; > 0 is a like.

    Keyword: ``kw_pos`` vs ``kw_neg``; similarity: ``sim_pos`` vs ``sim_neg``; statistical: the like
    log-odds vs ``stat_threshold`` (the log-odds of the training like rate, so that the calibrated model
    votes dislike on items it finds less likeable than average rather than almost never).
    """
    kw = np.sign(x[..., _COL["kw_pos"]] - x[..., _COL["kw_neg"]])
    sim = np.sign(x[..., _COL["sim_pos"]] - x[..., _COL["sim_neg"]])
    stat = np.sign(x[..., _COL["stat_like"]] - stat_threshold)
    return (kw + sim + stat).astype(np.int8)


def fit_learned(
    x: np.ndarray, targets: HeadTargets, generator: torch.Generator, like_columns: Sequence[int] | None = None
) -> Heads:
    """The learned ensemble: logistic regression of both heads on the standardised feature vector (the like
    head on ``like_columns`` only, when given)."""
    return fit_heads(x, targets, hidden=0, generator=generator, like_columns=like_columns)
