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

from tastesim.catalog import Decisions
from tastesim.catalog.tables import CatalogTables, ReasonBank
from tastesim.memory.working import LIKE, WorkingMemory
from tastesim.rng import RowDraws
from tastesim.scenario import DriftConfig

__all__ = ["InterestState", "click_offset", "initial_state", "item_vectors", "update_state"]


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
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def item_vectors(tables: CatalogTables, bank: ReasonBank) -> np.ndarray:
    """Unit mean of each item's like-reason embeddings ``(I, d)`` (zero for an item without reasons)."""
    present = tables.like >= 0
    vecs = bank.vectors[np.where(present, tables.like, 0)] * present[..., None]
    return _unit(vecs.sum(axis=1))


def _category_bits(tables: CatalogTables) -> np.ndarray:
    return np.array([c % 63 for c in range(len(tables.categories))], dtype=np.int64)


def initial_state(memory: WorkingMemory, tables: CatalogTables, bank: ReasonBank, params: DriftConfig) -> InterestState:
    """The state derived from each agent's working memory (see module docstring)."""
    valid = memory.reason >= 0
    vectors = bank.vectors[np.where(valid, memory.reason, 0)]
    like = valid & (memory.polarity == LIKE)
    weight = np.where(like, memory.strength, -memory.strength * (params.push / params.pull)) * valid
    mass = _unit(np.einsum("nm,nmd->nd", weight.astype(np.float32), vectors))
    bits = (memory.category_mask[..., None] >> _category_bits(tables)) & 1  # (n, M, C)
    per_slot = bits / np.maximum(bits.sum(-1, keepdims=True), 1)
    cats = np.einsum("nm,nmc->nc", (memory.strength * like).astype(np.float32), per_slot.astype(np.float32))
    cats = (cats / np.maximum(cats.sum(-1, keepdims=True), 1e-12)).astype(np.float32)
    n, n_cat = cats.shape
    return InterestState(mass, _unit(mass), cats, cats.copy(), np.zeros((n, n_cat), dtype=np.float32))


def _scatter_sum(n: int, width: int, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.zeros((n, width), dtype=np.float32)
    np.add.at(out, rows, values)
    return out


def update_state(
    state: InterestState,
    active: np.ndarray,
    slates: np.ndarray,
    decisions: Decisions,
    *,
    vectors: np.ndarray,
    primary: np.ndarray,
    params: DriftConfig,
) -> None:
    """Move the state after one step's decisions (in place): pull, push, decay, satiation."""
    n, n_cat = state.categories.shape
    agent_of = np.broadcast_to(active[:, None], slates.shape)
    liked_a, liked_i = agent_of[decisions.like], slates[decisions.like]
    disliked_a, disliked_i = agent_of[decisions.dislike], slates[decisions.dislike]
    clicked_a, clicked_i = agent_of[decisions.click], slates[decisions.click]
    d = vectors.shape[1]
    step = params.pull * _scatter_sum(n, d, liked_a, vectors[liked_i]) - params.push * _scatter_sum(
        n, d, disliked_a, vectors[disliked_i]
    )
    state.mass *= np.float32(1.0 - params.decay)
    state.mass += step
    liked_cats = _scatter_sum(n, n_cat, (liked_a, primary[liked_i]), np.ones(liked_a.size, dtype=np.float32))
    total = liked_cats.sum(-1, keepdims=True)
    moved = total[:, 0] > 0
    share = liked_cats[moved] / total[moved]
    state.categories[moved] = (1 - params.pull) * state.categories[moved] + params.pull * share
    state.satiation *= np.float32(1.0 - params.recovery)
    np.add.at(state.satiation, (clicked_a, primary[clicked_i]), 1.0)


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
    item_vecs = vectors[items]  # (n, S, d)
    now = np.einsum("nsd,nd->ns", item_vecs, state.centroid()[active])
    then = np.einsum("nsd,nd->ns", item_vecs, state.initial[active])
    bored = np.take_along_axis(state.satiation[active], primary[items], axis=1)
    explore = draws.uniform(slates.shape[1]) < params.exploration
    offset = params.affinity * (now - then) - params.satiation_weight * bored + params.exploration_bonus * explore
    return np.where(slates >= 0, offset, 0.0).astype(np.float32)
