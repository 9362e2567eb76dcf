"""Per-(agent, item) feature vectors shared by the learned ensemble and the distilled scorer.

The features are the method's three models (keyword counts, similarity maxima and appeal, the statistical
model's two logits) plus simple evidence: whether the agent has memories in the item's category, item
popularity, shrunk item and user rating biases, and how full the agent's working memory is. Everything
is a gather from per-agent and per-item tables, so a whole step is one vectorised call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from tastesim.catalog import PairFeatures
from tastesim.catalog.tables import CatalogTables, ReasonBank
from tastesim.memory.working import WorkingMemory
from tastesim.scoring.logical import logical_features
from tastesim.scoring.statistical import StatTables

__all__ = ["FEATURES", "Biases", "PairContext", "pair_features", "rating_biases"]

FEATURES = (
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


@dataclass(frozen=True)
class PairContext:
    """What the features read besides working memory, indexed by agent and by item."""

    tables: CatalogTables
    bank: ReasonBank
    stat: StatTables  # user rows = agents
    biases: Biases
    agent_user: np.ndarray  # (A,) row of each agent in ``biases.user``

    def rows(self, agents: np.ndarray) -> PairContext:
        """The context of ``agents`` re-indexed ``0 .. len(agents) - 1``."""
        return PairContext(self.tables, self.bank, self.stat.rows(agents), self.biases, self.agent_user[agents])


def pair_features(
    memory: WorkingMemory, agents: np.ndarray, slates: np.ndarray, ctx: PairContext
) -> tuple[np.ndarray, PairFeatures]:
    """Feature tensor ``(n, slate, len(FEATURES))`` (float32) and the logical models' outputs."""
    logical = logical_features(memory, agents, slates, ctx.tables, ctx.bank)
    items = np.where(slates >= 0, slates, 0)
    agent_of = np.broadcast_to(agents[:, None], slates.shape)
    interact, like = ctx.stat.logits(agent_of, items)
    b = ctx.biases
    fill = memory.count()[agents].astype(np.float32) / memory.capacity
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
        b.user[ctx.agent_user[agent_of]],
        np.broadcast_to(fill[:, None], slates.shape),
    )
    return np.stack([np.asarray(c, dtype=np.float32) for c in columns], axis=-1), logical
