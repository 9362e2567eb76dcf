"""Per-(agent, item) feature vectors shared by the learned ensemble and the distilled scorer.

The features are the method's three models (keyword counts, similarity maxima and appeal, the statistical
model's two logits) plus simple evidence: whether the agent has memories in the item's category, item
popularity, shrunk item and user rating biases, and how full the agent's working memory is; then who the
user is (:mod:`tastesim.scoring.taste`: like rates, factorisation, similarity to the user's own liked and
disliked history, user x reason affinity). Everything is a gather from per-agent, per-user and per-item
tables, so a whole step is one vectorised call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tastesim.catalog import PairFeatures
from tastesim.catalog.tables import CatalogTables, ReasonBank
from tastesim.memory.working import WorkingMemory
from tastesim.scoring.biases import Biases, rating_biases
from tastesim.scoring.logical import logical_features
from tastesim.scoring.statistical import StatTables
from tastesim.scoring.taste import TASTE_FEATURES, TasteTables, taste_columns

__all__ = [
    "FEATURES",
    "FEATURE_GROUPS",
    "MEMORY_FEATURES",
    "PREVIOUS_FEATURES",
    "Biases",
    "PairContext",
    "pair_features",
    "rating_biases",
]

PREVIOUS_FEATURES = (
    "kw_pos",
    "kw_neg",
    "sim_pos",
    "sim_neg",
    "appeal",
    "in_category",
    "stat_interact",
    "stat_like",
    "popularity",
    "item_bias",
    "user_bias",
    "memory_fill",
)
FEATURES = PREVIOUS_FEATURES + TASTE_FEATURES
MEMORY_FEATURES = ("kw_pos", "kw_neg", "sim_pos", "sim_neg", "appeal", "in_category", "memory_fill")
FEATURE_GROUPS = {  # the new evidence, by kind (the fidelity report measures each)
    "like rates": ("rating_bias", "user_like_rate", "item_like_rate", "recent_popularity"),
    "factorisation": ("mf_like", "cf_interact"),
    "history similarity": (
        "hist_like",
        "hist_dislike",
        "hist_all",
        "hist_residual",
        "hist_recent5",
        "hist_recent20",
    ),
    "user x reason affinity": ("affinity", "affinity_like", "affinity_dislike"),
}


@dataclass(frozen=True)
class PairContext:
    """What the features read besides working memory, indexed by agent and by item."""

    tables: CatalogTables
    bank: ReasonBank
    stat: StatTables  # user rows = agents
    taste: TasteTables  # user rows = rows of the training matrix
    agent_user: np.ndarray  # (A,) row of each agent in the training matrix (``taste``, ``biases.user``)

    @property
    def biases(self) -> Biases:
        """The training part's shrunk rating biases."""
        return self.taste.biases

    def rows(self, agents: np.ndarray) -> PairContext:
        """The context of ``agents`` re-indexed ``0 .. len(agents) - 1`` (per-user tables stay, reached
        through ``agent_user``)."""
        return PairContext(self.tables, self.bank, self.stat.rows(agents), self.taste, self.agent_user[agents])


_ROWS = 2048  # rows per chunk: each chunk's gathered (rows, slate, dim) tables stay in the CPU caches


def pair_features(
    memory: WorkingMemory, agents: np.ndarray, slates: np.ndarray, ctx: PairContext
) -> tuple[np.ndarray, PairFeatures]:
    """Feature tensor ``(n, slate, len(FEATURES))`` (float32) and the logical models' outputs.

    Computed in chunks of rows written into one array: every feature of a row depends on that row only, so
    the result is the same for any chunking, and the per-slot gathers (item vectors, user histories) of a
    100,000-agent step never materialise whole (measured: README "Performance and scale").
    """
    x = np.empty((*slates.shape, len(FEATURES)), dtype=np.float32)
    fill = memory.count()[agents].astype(np.float32) / memory.capacity
    logical = [
        _chunk_features(
            memory,
            ctx,
            agents=agents[s : s + _ROWS],
            slates=slates[s : s + _ROWS],
            fill=fill[s : s + _ROWS],
            out=x[s : s + _ROWS],
        )
        for s in range(0, len(agents), _ROWS)
    ]
    if not logical:
        return x, logical_features(memory, agents, slates, ctx.tables, ctx.bank)
    return x, PairFeatures.concatenate(logical)


def _chunk_features(
    memory: WorkingMemory,
    ctx: PairContext,
    *,
    agents: np.ndarray,
    slates: np.ndarray,
    fill: np.ndarray,
    out: np.ndarray,
) -> PairFeatures:
    """The features of one chunk of rows (``fill``: their memory fill) into ``out``; returns the chunk's logical
    models' outputs."""
    logical = logical_features(memory, agents, slates, ctx.tables, ctx.bank)
    items = np.where(slates >= 0, slates, 0)
    interact, like = ctx.stat.slate_logits(agents, items)
    b = ctx.biases
    users = ctx.agent_user[agents]
    taste = taste_columns(ctx.taste, users, items, ctx.tables.like[items], ctx.tables.dislike[items])
    columns = (
        logical.kw_pos,
        logical.kw_neg,
        logical.sim_pos,
        logical.sim_neg,
        logical.appeal,
        logical.in_category,
        interact,
        like,
        b.popularity[items],
        b.item[items],
        b.user[users][:, None],
        fill[:, None],
        *taste,
    )
    for k, column in enumerate(columns):
        out[..., k] = column
    return logical
