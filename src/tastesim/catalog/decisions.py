"""What a decision model returns for a batch of slates: the decisions and the evidence behind them."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Decisions:
    """Outcome per shown item, each array ``(n_agents, slate)`` of bool."""

    click: np.ndarray
    like: np.ndarray
    dislike: np.ndarray
