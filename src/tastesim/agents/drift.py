"""Interest drift: each agent's interest state, how consumption moves it, and how it moves decisions.

The state of agent ``a`` (batched over agents, like the working memory it is derived from):

* ``mass[a]``: an interest vector in reason-embedding space. It starts as the strength-weighted sum of the
  agent's remembered reason embeddings (like memories add, dislike memories subtract ``push / pull`` of
  their weight), scaled to unit length. Each step it decays and moves::

      mass <- (1 - decay) * mass + pull * sum(liked item vectors) - push * sum(disliked item vectors)

  so old interests fade geometrically (decay of old memories), liked items pull and disliked items push.
  The *centroid* is ``mass / |mass|``. RecSim's interest-evolution user is the reference: it steps its
  interest vector toward each consumed document by a fixed step size; here the step is ``pull`` for liked
  and ``-push`` for disliked items, relative to the current (decaying) mass.
* ``categories[a]``: a distribution over catalog categories, an exponential moving average (rate
  ``pull``) of the primary categories of the items the agent liked; starts from its like memories.
* ``satiation[a]``: boredom per category: ``satiation <- (1 - recovery) * satiation + clicks in category``.

Decisions depend on the state through :func:`click_offset`, added to the click log-odds of the logical
rule: ``affinity * (cos(centroid_t, item) - cos(centroid_0, item)) - satiation_weight * satiation[category]``
plus, with probability ``exploration`` per shown item, ``exploration_bonus``. At step 0 the offset is zero
(bar exploration), so the rule's calibration against real data is kept and only drift changes behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import scipy.sparse as sp

from tastesim.catalog import Decisions
from tastesim.catalog.tables import CatalogTables, ReasonBank
from tastesim.memory.working import LIKE, WorkingMemory
from tastesim.rng import RowDraws
from tastesim.scenario import DriftConfig

__all__ = ["InterestState", "Moves", "click_offset", "initial_state", "item_vectors", "unit_rows", "update_state"]


@dataclass
class InterestState:
    """Batched interest state (see module docstring); ``initial`` is the step-0 centroid, kept for metrics."""

    mass: np.ndarray  # (n, d) float32
    initial: np.ndarray  # (n, d) float32 unit rows
    categories: np.ndarray  # (n, C) float32, rows sum to 1 (or 0 with no like memory)
    initial_categories: np.ndarray  # (n, C)
    satiation: np.ndarray  # (n, C) float32

    def centroid(self) -> np.ndarray:
        """Unit interest centroids ``(n, d)`` (zero rows stay zero)."""
        return _unit(self.mass)

    def arrays(self) -> dict[str, np.ndarray]:
        """Arrays for a checkpoint."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def copy_rows(self, rows: np.ndarray, source: InterestState, source_rows: np.ndarray) -> None:
        """Overwrite ``rows`` with ``source``'s ``source_rows``."""
        for f in fields(self):
            getattr(self, f.name)[rows] = getattr(source, f.name)[source_rows]

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`arrays` (in place)."""
        for f in fields(self):
            getattr(self, f.name)[...] = arrays[f.name]


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.sqrt(np.einsum("...d,...d->...", x, x))[..., None]  # no (rows, d) temporary, unlike linalg.norm
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32, copy=False)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32: the centroid of interest mass rows."""
    return _unit(x)


def item_vectors(tables: CatalogTables, bank: ReasonBank) -> np.ndarray:
    """Unit mean of each item's like-reason embeddings ``(I, d)`` (zero for an item without reasons)."""
    present = tables.like >= 0
    vecs = bank.vectors[np.where(present, tables.like, 0)] * present[..., None]
    return _unit(vecs.sum(axis=1))


def _category_bits(tables: CatalogTables) -> np.ndarray:
    return np.array([c % 63 for c in range(len(tables.categories))], dtype=np.int64)


_CHUNK = 1024  # rows per chunk of (rows, [slots,] d) temporaries: bounds their memory, which is then reused


def initial_state(memory: WorkingMemory, tables: CatalogTables, bank: ReasonBank, params: DriftConfig) -> InterestState:
    """The state derived from each agent's working memory (see module docstring); row by row, in chunks."""
    n = memory.n_agents
    mass = np.zeros((n, bank.vectors.shape[1]), dtype=np.float32)
    cats = np.zeros((n, len(tables.categories)), dtype=np.float32)
    bits_of = _category_bits(tables)
    for lo in range(0, n, _CHUNK):
        rows = slice(lo, lo + _CHUNK)
        reason, strength = memory.reason[rows], memory.strength[rows]
        valid = reason >= 0
        vectors = bank.vectors[np.where(valid, reason, 0)]
        like = valid & (memory.polarity[rows] == LIKE)
        weight = np.where(like, strength, -strength * (params.push / params.pull)) * valid
        mass[rows] = _unit(np.einsum("nm,nmd->nd", weight.astype(np.float32), vectors))
        bits = (memory.category_mask[rows][..., None] >> bits_of) & 1  # (n, M, C)
        per_slot = bits / np.maximum(bits.sum(-1, keepdims=True), 1)
        part = np.einsum("nm,nmc->nc", (strength * like).astype(np.float32), per_slot.astype(np.float32))
        cats[rows] = part / np.maximum(part.sum(-1, keepdims=True), 1e-12)
    return InterestState(mass, _unit(mass), cats, cats.copy(), np.zeros_like(cats))


def _events(rows: np.ndarray, items: np.ndarray, weights: np.ndarray, width: int) -> tuple[np.ndarray, sp.csr_matrix]:
    """``(unique rows, events)``: a sparse ``(unique rows, width)`` matrix of the (row, item, weight) events,
    so ``events @ table`` sums ``weight * table[item]`` per row without an (events, d) temporary."""
    unique, at = np.unique(rows, return_inverse=True)
    events = sp.csr_matrix((weights.astype(np.float32), (at, items)), shape=(len(unique), width))
    return unique.astype(np.int64), events


@dataclass(frozen=True)
class Moves:
    """The rows whose interest vector moved in one update, and how (for drift metrics, see ``update_state``).

    Attributes:
        rows: Rows that liked or disliked something (ascending); every other row only decayed.
        step_cos: Per moved row, ``cos(centroid after, centroid before)``.
        start_cos: Per moved row, ``cos(centroid after, step-0 centroid)``.
    """

    rows: np.ndarray
    step_cos: np.ndarray
    start_cos: np.ndarray


def update_state(
    state: InterestState,
    active: np.ndarray,
    slates: np.ndarray,
    decisions: Decisions,
    *,
    vectors: np.ndarray,
    primary: np.ndarray,
    params: DriftConfig,
) -> Moves:
    """Move the state after one step's decisions (in place): pull, push, decay, satiation.

    Returns the rows whose interest vector moved (a like or a dislike) with the cosines drift metrics need,
    computed while the rows pass by: moved rows are updated in chunks, so no (rows, d) array is ever made.
    """
    n_cat = state.categories.shape[1]
    agent_of = np.broadcast_to(active[:, None], slates.shape)
    judged = decisions.like | decisions.dislike
    weight = np.where(decisions.like, np.float32(params.pull), np.float32(-params.push))[judged]
    moved, events = _events(agent_of[judged], slates[judged], weight, vectors.shape[0])
    state.mass *= np.float32(1.0 - params.decay)
    step_cos, start_cos = np.zeros(moved.size), np.zeros(moved.size)
    for lo in range(0, moved.size, _CHUNK):
        rows = moved[lo : lo + _CHUNK]
        before = state.mass[rows]
        after = before + np.asarray(events[lo : lo + _CHUNK] @ vectors, dtype=np.float32)
        state.mass[rows] = after
        nb = np.einsum("nd,nd->n", before, before, dtype=np.float64)
        na = np.einsum("nd,nd->n", after, after, dtype=np.float64)
        both = np.sqrt(na * nb)
        step_cos[lo : lo + len(rows)] = np.where(both > 0, np.einsum("nd,nd->n", after, before) / both, 0.0)
        start = np.einsum("nd,nd->n", after, state.initial[rows])
        start_cos[lo : lo + len(rows)] = np.where(na > 0, start / np.sqrt(na), 0.0)
    liked_a, liked_i = agent_of[decisions.like], slates[decisions.like]
    cat_rows, counts = _events(liked_a, primary[liked_i], np.ones(len(liked_a)), n_cat)
    counts = counts.toarray()
    share = counts / counts.sum(-1, keepdims=True)
    state.categories[cat_rows] = (1 - params.pull) * state.categories[cat_rows] + params.pull * share
    state.satiation *= np.float32(1.0 - params.recovery)
    clicked_a, clicked_i = agent_of[decisions.click], slates[decisions.click]
    np.add.at(state.satiation, (clicked_a, primary[clicked_i]), 1.0)
    return Moves(moved, step_cos, start_cos)


def click_offset(
    state: InterestState,
    active: np.ndarray,
    slates: np.ndarray,
    *,
    vectors: np.ndarray,
    primary: np.ndarray,
    params: DriftConfig,
    draws: RowDraws,
) -> np.ndarray:
    """Click log-odds offset ``(n_active, slate)`` from the agents' current interest state."""
    items = np.where(slates >= 0, slates, 0)
    gained = np.zeros(slates.shape, dtype=np.float32)  # cos(centroid now, item) - cos(centroid at step 0, item)
    for lo in range(0, len(active), _CHUNK):
        rows = active[lo : lo + _CHUNK]
        towards = _unit(state.mass[rows]) - state.initial[rows]
        gained[lo : lo + _CHUNK] = np.einsum("nsd,nd->ns", vectors[items[lo : lo + _CHUNK]], towards)
    bored = np.take_along_axis(state.satiation[active], primary[items], axis=1)
    explore = draws.uniform(slates.shape[1]) < params.exploration
    offset = params.affinity * gained - params.satiation_weight * bored + params.exploration_bonus * explore
    return np.where(slates >= 0, offset, 0.0).astype(np.float32)
