"""The recommender-under-test protocol: a batched slate request, the step's feedback, and a learning cycle.

A recommender is fitted before the run on the training interactions, receives one :class:`SlateRequest` per
step for all acting agents and returns a slate per agent, then receives that step's :class:`Feedback` (what
every agent clicked, liked and disliked). A scenario with ``recommender.retrain_every: K`` refits it every
``K`` steps on the training interactions plus the simulated log so far (see
:class:`~tastesim.recommenders.log.FeedbackLog`), with a generator seeded by the run's random tree, so a
resumed run retrains exactly as an uninterrupted one.

Items an agent may not see (already consumed, unless the scenario allows repeats) arrive as a boolean
``blocked`` matrix; the built-ins never return blocked items, and the model drops any blocked item a custom
recommender returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

__all__ = ["Feedback", "Recommender", "ScoreRecommender", "SlateRequest", "top_k_unblocked"]

_ROWS = 4096  # agents scored at once (bounds the dense score block)


@dataclass(frozen=True)
class SlateRequest:
    """What the recommender is asked for one step.

    Attributes:
        agents: Agent indices, shape ``(n,)``.
        history: CSR matrix ``(n, n_items)`` of each agent's consumed items (value = recency weight).
        blocked: Bool matrix ``(n, n_items)`` of items not to return.
        k: Slate size.
        step: Simulation step.
        rng: Generator for this step (seeded by the model).
    """

    agents: np.ndarray
    history: sp.csr_matrix
    blocked: np.ndarray
    k: int
    step: int
    rng: np.random.Generator


@dataclass(frozen=True)
class Feedback:
    """What the agents did with one step's slates (every array but ``agents`` is ``(n, k)``).

    Attributes:
        step: The simulation step.
        agents: Agent indices ``(n,)``, row order of the slates.
        slates: Item indices shown, ``-1`` for an empty slot.
        click, like, dislike: The agents' decisions per slot (like and dislike only for clicked items).
    """

    step: int
    agents: np.ndarray
    slates: np.ndarray
    click: np.ndarray
    like: np.ndarray
    dislike: np.ndarray


@runtime_checkable
class Recommender(Protocol):
    """Turns a :class:`SlateRequest` into slates ``(n, k)`` of item indices (``-1`` = none), and learns."""

    name: str

    def fit(self, interactions: sp.csr_matrix, rng: np.random.Generator) -> None:
        """Learn from interactions ``(rows, n_items)``: the training users, then (when refitted) one row per
        agent of simulated feedback. ``rng`` is the only source of randomness a fit may use."""
        ...

    def recommend(self, request: SlateRequest) -> np.ndarray:
        """Return slates for every agent in the request."""
        ...

    def observe(self, feedback: Feedback) -> None:
        """Receive one step's feedback (called after every step, before any refit)."""
        ...


def top_k_unblocked(scores: np.ndarray, blocked: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best unblocked scores per row, best first (``-1`` pads rows with fewer)."""
    scores = np.where(blocked, -np.inf, scores)
    k_eff = min(k, scores.shape[1])
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    order = np.take_along_axis(scores, part, axis=1)
    ranked = np.take_along_axis(part, np.argsort(-order, axis=1, kind="stable"), axis=1)
    ranked = np.where(np.isfinite(np.take_along_axis(scores, ranked, axis=1)), ranked, -1)
    if k_eff < k:
        ranked = np.pad(ranked, ((0, 0), (0, k - k_eff)), constant_values=-1)
    return ranked


class ScoreRecommender:
    """Shared batching for recommenders that score every item: subclasses give a dense score block for a
    slice of the request. Feedback reaches them through refits (``retrain_every``); ``observe`` keeps
    nothing."""

    name = "base"

    def recommend(self, request: SlateRequest) -> np.ndarray:
        """Score in row blocks and keep the top ``k`` unblocked items."""
        out = []
        for start in range(0, len(request.agents), _ROWS):
            rows = slice(start, start + _ROWS)
            out.append(top_k_unblocked(self.scores(request, rows), request.blocked[rows], request.k))
        return np.concatenate(out) if out else np.zeros((0, request.k), dtype=np.int64)

    def scores(self, request: SlateRequest, rows: slice) -> np.ndarray:
        """Dense scores ``(rows, n_items)`` for a slice of the request's agents (higher is better)."""
        raise NotImplementedError

    def observe(self, feedback: Feedback) -> None:
        """Nothing to keep between refits."""
