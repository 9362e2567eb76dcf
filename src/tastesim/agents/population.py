"""Build a population from real histories: time split, seed memories, consumed items.

Everything that depends only on the real user is kept once per *distinct* user (its training row, its
held-out items, its attributes, its seeded memory) and reached through ``user_rows``: a population of
100,000 agents resampled from 943 users holds 943 histories, not 100,000 copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tastesim.catalog.tables import CatalogTables
from tastesim.data.dataset import Dataset
from tastesim.memory.working import DISLIKE, LIKE, WorkingMemory

__all__ = ["Population", "build_population", "seed_memory", "seed_user_memory", "split_by_time"]


@dataclass(frozen=True)
class Population:
    """Everything per agent that the simulation starts from.

    Attributes:
        users: Source user id of each agent, shape ``(n_agents,)``.
        train: Training interactions of the *distinct* real users ``(n_users, n_items)`` (ratings), the
            data recommenders are fitted on.
        user_rows: For each agent, its source user's row in ``train``.
        user_ids: The distinct users' ids, in the row order of ``train`` (natural order of the ids).
        holdout_ptr, holdout_items: Per distinct user ``u``, the item indices it rated after the split (the
            real future), in time order: ``holdout_items[holdout_ptr[u]:holdout_ptr[u + 1]]``.
        user_segments: Per distinct user, its attributes (strings).
    """

    users: np.ndarray
    train: sp.csr_matrix
    user_rows: np.ndarray
    user_ids: np.ndarray
    holdout_ptr: np.ndarray
    holdout_items: np.ndarray
    user_segments: list[dict[str, str]]

    @property
    def n_agents(self) -> int:
        """Number of agents."""
        return len(self.users)

    def consumed_rows(self, agents: np.ndarray | None = None) -> sp.csr_matrix:
        """Bool CSR ``(len(agents), n_items)`` of the items the agents consumed before the run (all agents
        when ``agents`` is ``None``)."""
        rows = self.user_rows if agents is None else self.user_rows[agents]
        return (self.train[rows] > 0).tocsr()

    @property
    def consumed(self) -> np.ndarray:
        """Dense bool ``(n_agents, n_items)`` of :meth:`consumed_rows` (a copy; large populations use the rows)."""
        return self.consumed_rows().toarray()

    def holdout_of(self, agent: int) -> np.ndarray:
        """Item indices the agent's real user rated after the split, in time order."""
        u = self.user_rows[agent]
        return self.holdout_items[self.holdout_ptr[u] : self.holdout_ptr[u + 1]]

    @property
    def holdout(self) -> list[np.ndarray]:
        """Per agent, :meth:`holdout_of` (a list of views)."""
        return [self.holdout_of(a) for a in range(self.n_agents)]

    @property
    def segments(self) -> list[dict[str, str]]:
        """Per agent, its source user's attributes (shared dicts: treat as read-only)."""
        return [self.user_segments[u] for u in self.user_rows]


def split_by_time(interactions: pd.DataFrame, train_fraction: float) -> pd.Series:
    """Bool mask of training rows: each user's earliest ``train_fraction`` of ratings (at least one)."""
    rank = interactions.groupby("user", sort=False).cumcount()
    size = interactions.groupby("user", sort=False)["item"].transform("size")
    n_train = np.maximum(1, np.floor(size * train_fraction)).astype(int)
    return rank < n_train


def build_population(
    dataset: Dataset, n_agents: int | None, train_fraction: float, rng: np.random.Generator
) -> tuple[Population, pd.DataFrame]:
    """Choose source users for the agents and split histories by time.

    All users are used once (in id order) when ``n_agents`` is empty; fewer are sampled without
    replacement; more are all users once plus a resample with replacement.

    Returns:
        The population and the training rows (one row per distinct user and rating, with ``item_index``).
    """
    inter = dataset.interactions
    is_train = split_by_time(inter, train_fraction).to_numpy()
    users = np.array(sorted(inter["user"].unique(), key=_natural))
    if n_agents is None or n_agents == len(users):
        chosen = users
    elif n_agents < len(users):
        chosen = np.sort(rng.choice(users, size=n_agents, replace=False))
    else:
        chosen = np.concatenate([users, rng.choice(users, size=n_agents - len(users), replace=True)])
    user_row = pd.Series(np.arange(len(users)), index=users)
    item_idx = dataset.item_index(inter["item"].tolist())
    row_of = user_row.reindex(inter["user"].to_numpy()).to_numpy()
    train_rows = inter[is_train]
    train = sp.csr_matrix(
        (train_rows["rating"].to_numpy(), (row_of[is_train], item_idx[is_train])),
        shape=(len(users), dataset.n_items),
    )
    rows = user_row.reindex(chosen).to_numpy().astype(np.int64)
    held_rows, held_items = row_of[~is_train], item_idx[~is_train]
    order = np.argsort(held_rows, kind="stable")  # by user, time order kept within a user
    ptr = np.concatenate([[0], np.cumsum(np.bincount(held_rows, minlength=len(users)))]).astype(np.int64)
    population = Population(
        chosen, train, rows, users, ptr, held_items[order].astype(np.int64), _segments(dataset, users)
    )
    return population, train_rows.assign(item_index=item_idx[is_train])


def seed_user_memory(
    population: Population,
    train_rows: pd.DataFrame,
    tables: CatalogTables,
    capacity: int,
    like_threshold: float,
) -> WorkingMemory:
    """The seeded working memory of each *distinct* user (rows of ``population.train``).

    Liked items (rating >= ``like_threshold``) give like memories from their like reasons, disliked items
    dislike memories from their dislike reasons. A reason's strength is the sum over the items that gave
    it of a recency weight in [0.5, 1] (newest = 1); each user keeps its ``capacity`` strongest.
    """
    order = train_rows.groupby("user", sort=False).cumcount().to_numpy()
    size = train_rows.groupby("user", sort=False)["item"].transform("size").to_numpy()
    weight = 0.5 + 0.5 * (order + 1) / size
    liked = train_rows["rating"].to_numpy() >= like_threshold
    items = train_rows["item_index"].to_numpy()
    events = []
    for polarity, reasons_of, mask in ((LIKE, tables.like, liked), (DISLIKE, tables.dislike, ~liked)):
        reasons = reasons_of[items[mask]]  # (k, L)
        for col in range(reasons.shape[1]):
            events.append(
                pd.DataFrame(
                    {
                        "user": train_rows["user"].to_numpy()[mask],
                        "reason": reasons[:, col],
                        "polarity": polarity,
                        "weight": weight[mask],
                        "order": order[mask],
                        "item": items[mask],
                    }
                )
            )
    ev = pd.concat(events, ignore_index=True)
    ev = ev[ev["reason"] >= 0]
    ev["mask"] = tables.category_mask[ev["item"].to_numpy()]
    ev = ev.sort_values(["user", "reason", "polarity", "order"], kind="stable")
    grouped = (
        ev.groupby(["user", "reason", "polarity"], sort=False)
        .agg(strength=("weight", "sum"), order=("order", "max"), item=("item", "last"))
        .reset_index()
    )
    # ev is sorted by the group keys, so each group is one run of rows, in the order groupby(sort=False) lists them
    users, reasons, polarities = (ev[c].to_numpy() for c in ("user", "reason", "polarity"))
    starts = np.flatnonzero(
        np.r_[True, (users[1:] != users[:-1]) | (reasons[1:] != reasons[:-1]) | (polarities[1:] != polarities[:-1])]
    )
    grouped["mask"] = np.bitwise_or.reduceat(ev["mask"].to_numpy(), starts)
    grouped = grouped.sort_values(
        ["user", "strength", "order", "reason"], ascending=[True, False, False, True], kind="stable"
    )
    top = grouped.groupby("user", sort=False).head(capacity)
    memory = WorkingMemory(len(population.user_ids), capacity)
    if top.empty:
        return memory
    rows = pd.Series(np.arange(len(population.user_ids)), index=population.user_ids)
    row = rows.reindex(top["user"].to_numpy()).to_numpy()
    rank = top.groupby("user", sort=False).cumcount().to_numpy()
    memory.reason[row, rank] = top["reason"].to_numpy()
    memory.polarity[row, rank] = top["polarity"].to_numpy()
    memory.strength[row, rank] = top["strength"].to_numpy()
    memory.category_mask[row, rank] = top["mask"].to_numpy()
    memory.item[row, rank] = top["item"].to_numpy()
    return memory


def seed_memory(
    population: Population,
    train_rows: pd.DataFrame,
    tables: CatalogTables,
    capacity: int,
    like_threshold: float,
) -> tuple[WorkingMemory, np.ndarray]:
    """Each agent's seeded working memory: a copy of its source user's (:func:`seed_user_memory`).

    Returns:
        The memory and the (agent, slot) rows created (all at step 0).
    """
    per_user = seed_user_memory(population, train_rows, tables, capacity, like_threshold)
    memory = WorkingMemory(population.n_agents, capacity)
    memory.copy_rows(np.arange(population.n_agents), per_user, population.user_rows)
    return memory, np.argwhere(memory.reason >= 0)


def _natural(value: str) -> tuple[int, int | str]:
    return (0, int(value)) if value.isdigit() else (1, value)


def _segments(dataset: Dataset, users: np.ndarray) -> list[dict[str, str]]:
    """Attributes of each distinct user (empty when the dataset has none for it)."""
    if dataset.users is None:
        return [{} for _ in users]
    table = dataset.users.drop_duplicates("user").set_index("user").astype(str)
    records = table.to_dict(orient="index")
    return [dict(records.get(u, {})) for u in users]
