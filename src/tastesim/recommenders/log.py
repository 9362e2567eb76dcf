"""The simulated feedback log a learning recommender is refitted on.

One entry per clicked (agent, item) of a step: the recommender retrains on the training interactions (one
row per real user, 1 for every rated item) stacked over one row per agent of simulated feedback, where a
clicked item weighs 1 and a liked one 2. Popularity and item-kNN read the matrix as consumption (> 0);
matrix factorisation reads the weights as confidence.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tastesim.recommenders.base import Feedback

__all__ = ["FeedbackLog"]

_FIELDS = ("step", "agent", "item", "like", "dislike")


class FeedbackLog:
    """Append-only arrays of clicked (step, agent, item, like, dislike) entries; with ``keep`` off (a recommender
    that is never refitted) nothing is kept, so a long run does not grow, and checkpoint, an unused log."""

    def __init__(self, n_agents: int, n_items: int, keep: bool = True) -> None:
        self.n_agents = n_agents
        self.n_items = n_items
        self.keep = keep
        self._parts: list[dict[str, np.ndarray]] = []

    def add(self, feedback: Feedback) -> None:
        """Append the clicked slots of one step (nothing without ``keep``)."""
        if not self.keep:
            return
        agent_of = np.broadcast_to(feedback.agents[:, None], feedback.slates.shape)
        clicked = feedback.click & (feedback.slates >= 0)
        self._parts.append(
            {
                "step": np.full(int(clicked.sum()), feedback.step, dtype=np.int32),
                "agent": agent_of[clicked].astype(np.int64),
                "item": feedback.slates[clicked].astype(np.int64),
                "like": feedback.like[clicked],
                "dislike": feedback.dislike[clicked],
            }
        )

    def state(self) -> dict[str, np.ndarray]:
        """Every entry, as arrays for a checkpoint."""
        empty = {"step": np.int32, "agent": np.int64, "item": np.int64, "like": bool, "dislike": bool}
        if not self._parts:
            return {name: np.zeros(0, dtype=dtype) for name, dtype in empty.items()}
        state = {name: np.concatenate([p[name] for p in self._parts]) for name in _FIELDS}
        self._parts = [state]
        return state

    def restore(self, state: dict[str, np.ndarray], upto: int) -> None:
        """Load a checkpoint's entries of steps ``<= upto``."""
        keep = state["step"] <= upto
        self._parts = [{name: np.asarray(state[name])[keep] for name in _FIELDS}]

    def matrix(self, upto: int) -> sp.csr_matrix:
        """Agents x items weights of the entries of steps ``<= upto`` (1 per click, 2 per liked click)."""
        entries = self.state()
        keep = entries["step"] <= upto
        weights = 1.0 + entries["like"][keep].astype(np.float32)
        return sp.csr_matrix(
            (weights, (entries["agent"][keep], entries["item"][keep])), shape=(self.n_agents, self.n_items)
        )

    def training_data(self, train: sp.csr_matrix, upto: int) -> sp.csr_matrix:
        """The training interactions (1 per rated item) stacked over the simulated log of steps ``<= upto``."""
        real = (train > 0).astype(np.float32)
        return sp.vstack([real, self.matrix(upto)], format="csr")
