"""What a decision model returns for a batch of slates: the decisions and the evidence behind them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

__all__ = ["Decisions", "PairFeatures"]


@dataclass(frozen=True)
class PairFeatures:
    """Logical-model outputs for a batch of slates, each array ``(n_agents, slate)``."""

    kw_pos: np.ndarray
    kw_neg: np.ndarray
    sim_pos: np.ndarray
    sim_neg: np.ndarray
    appeal: np.ndarray
    in_category: np.ndarray  # the agent had memories in the candidate's category

    @staticmethod
    def concatenate(parts: Sequence[PairFeatures]) -> PairFeatures:
        """The features of consecutive row chunks as one (a single chunk as it is)."""
        if len(parts) == 1:
            return parts[0]
        return PairFeatures(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(PairFeatures)))


@dataclass(frozen=True)
class Decisions:
    """Outcome per shown item, each array ``(n_agents, slate)`` of bool."""

    click: np.ndarray
    like: np.ndarray
    dislike: np.ndarray
