"""Build a population from real histories: time split, seed memories, consumed items."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tastesim.catalog.tables import CatalogTables
from tastesim.data.dataset import Dataset
from tastesim.memory.working import DISLIKE, LIKE, WorkingMemory

__all__ = ["Population", "build_population", "split_by_time"]


@dataclass(frozen=True)
class Population:
    """Everything per agent that the simulation starts from.

    Attributes:
        users: Source user id of each agent, shape ``(n_agents,)``.
        train: Training interactions of the *distinct* real users ``(n_users, n_items)`` (ratings), the
            data recommenders are fitted on.
        user_rows: For each agent, its source user's row in ``train``.
        consumed: Bool ``(n_agents, n_items)``: items each agent has already consumed.
        holdout: Per agent, the item indices its source user rated after the split (the real future).
        segments: Per agent, the source user's attributes.
    """

    users: np.ndarray
    train: sp.csr_matrix
    user_rows: np.ndarray
    consumed: np.ndarray
    holdout: list[np.ndarray]
    segments: list[dict[str, str]]


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
        The population and the training rows (with an ``agent`` column: one row per agent and rating).
    """
    inter = dataset.interactions
    is_train = split_by_time(inter, train_fraction)
    users = np.array(sorted(inter["user"].unique(), key=_natural))
    if n_agents is None or n_agents == len(users):
        chosen = users
    elif n_agents < len(users):
        chosen = np.sort(rng.choice(users, size=n_agents, replace=False))
    else:
        chosen = np.concatenate([users, rng.choice(users, size=n_agents - len(users), replace=True)])
    user_row = {u: i for i, u in enumerate(users)}
    item_idx = dataset.item_index(inter["item"].tolist())
    train_rows = inter[is_train.to_numpy()]
    train = sp.csr_matrix(
        (train_rows["rating"].to_numpy(), ([user_row[u] for u in train_rows["user"]], item_idx[is_train.to_numpy()])),
        shape=(len(users), dataset.n_items),
    )
    rows = np.array([user_row[u] for u in chosen])
    consumed = (train[rows] > 0).toarray()
    held = inter[~is_train.to_numpy()]
    held_items = dict(iter(held.assign(idx=item_idx[~is_train.to_numpy()]).groupby("user")["idx"]))
    holdout = [np.asarray(held_items[u].to_numpy()) if u in held_items else np.zeros(0, dtype=np.int64) for u in chosen]
    segments = _segments(dataset, chosen)
    population = Population(chosen, train, rows, consumed, holdout, segments)
    return population, train_rows.assign(item_index=item_idx[is_train.to_numpy()])


def seed_memory(
    population: Population,
    train_rows: pd.DataFrame,
    tables: CatalogTables,
    capacity: int,
    like_threshold: float,
) -> tuple[WorkingMemory, np.ndarray]:
    """Seed each agent's working memory with the strongest reasons of its training history.

    Liked items (rating >= ``like_threshold``) give like memories from their like reasons, disliked items
    dislike memories from their dislike reasons. A reason's strength is the sum over the items that gave
    it of a recency weight in [0.5, 1] (newest = 1); each agent keeps its ``capacity`` strongest.

    Returns:
        The memory and the (agent, slot) rows created (all at step 0).
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
        .agg(
            strength=("weight", "sum"),
            order=("order", "max"),
            item=("item", "last"),
            mask=("mask", lambda m: np.bitwise_or.reduce(m.to_numpy())),
        )
        .reset_index()
    )
    grouped = grouped.sort_values(
        ["user", "strength", "order", "reason"], ascending=[True, False, False, True], kind="stable"
    )
    top = grouped.groupby("user", sort=False).head(capacity)
    per_user = dict(iter(top.groupby("user", sort=False)))

    memory = WorkingMemory(len(population.users), capacity)
    for agent, user in enumerate(population.users):
        rows = per_user.get(user)
        if rows is None:
            continue
        n = len(rows)
        memory.reason[agent, :n] = rows["reason"].to_numpy()
        memory.polarity[agent, :n] = rows["polarity"].to_numpy()
        memory.strength[agent, :n] = rows["strength"].to_numpy()
        memory.category_mask[agent, :n] = rows["mask"].to_numpy()
        memory.item[agent, :n] = rows["item"].to_numpy()
    created = np.argwhere(memory.reason >= 0)
    return memory, created


def _natural(value: str) -> tuple[int, int | str]:
    return (0, int(value)) if value.isdigit() else (1, value)


def _segments(dataset: Dataset, chosen: np.ndarray) -> list[dict[str, str]]:
    if dataset.users is None:
        return [{} for _ in chosen]
    table = dataset.users.set_index("user").astype(str)
    return [table.loc[u].to_dict() if u in table.index else {} for u in chosen]
