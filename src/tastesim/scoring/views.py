"""Splits seen by the decision models: who is in the training part, what is held out, and the pairs scored.

Splits never touch more than they may: each user's earlier ``train_fraction`` of ratings is the *training
part*; inside it, the earlier ``train_fraction`` again is the *inner* part and the rest the *validation*
part. A :class:`SplitView` of a dataset holds one agent per user with memories, statistical summaries and
taste tables built from its training rows only, and the held-out rows it is scored on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tastesim.agents.population import Population, build_population, seed_memory
from tastesim.catalog.tables import CatalogTables, ReasonBank
from tastesim.data.dataset import Dataset
from tastesim.data.split import split_by_time
from tastesim.memory.working import WorkingMemory
from tastesim.rng import RandomTree, Stream
from tastesim.scoring.features import PairContext, pair_features
from tastesim.scoring.statistical import SASRec, stat_tables
from tastesim.scoring.taste import TasteSettings, TasteTables, fit_taste

__all__ = [
    "LabelledPairs",
    "PairSample",
    "SplitParts",
    "SplitView",
    "context_for",
    "inner_dataset",
    "label_pairs",
    "latest_items",
    "rated_matrix",
    "sample_pairs",
    "sequences",
    "split_parts",
    "split_view",
    "taste_for",
]


def inner_dataset(dataset: Dataset, train_fraction: float) -> Dataset:
    """The training part of ``dataset`` (each user's earlier ``train_fraction`` of ratings)."""
    keep = split_by_time(dataset.interactions, train_fraction).to_numpy()
    return replace(dataset, interactions=dataset.interactions[keep].reset_index(drop=True))


def sequences(train_rows: pd.DataFrame, users: np.ndarray, like_threshold: float) -> list[tuple[np.ndarray, ...]]:
    """Each user's training ``(item indices, liked)`` in time order (empty for a user with none)."""
    grouped = dict(iter(train_rows.groupby("user", sort=False)))
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    return [
        (g["item_index"].to_numpy(), (g["rating"].to_numpy() >= like_threshold).astype(np.int64))
        if (g := grouped.get(u)) is not None
        else empty
        for u in users
    ]


@dataclass(frozen=True)
class SplitParts:
    """A dataset split by time: one agent per user, its training rows and its held-out rows."""

    population: Population
    train_rows: pd.DataFrame  # with ``item_index``
    held: pd.DataFrame  # with ``agent`` and ``item_index``


def split_parts(dataset: Dataset, train_fraction: float, seed: int) -> SplitParts:
    """Split ``dataset`` by time at ``train_fraction`` (every user once, in id order)."""
    population, train_rows = build_population(
        dataset, None, train_fraction, RandomTree(seed).generator(Stream.POPULATION)
    )
    is_train = split_by_time(dataset.interactions, train_fraction).to_numpy()
    agent_of = {u: i for i, u in enumerate(population.users)}
    held = dataset.interactions[~is_train]
    held = held.assign(
        agent=held["user"].map(agent_of).to_numpy(), item_index=dataset.item_index(held["item"].tolist())
    )
    return SplitParts(population, train_rows, held.reset_index(drop=True))


def taste_for(
    population: Population,
    train_rows: pd.DataFrame,
    tables: CatalogTables,
    bank: ReasonBank,
    *,
    like_threshold: float,
    settings: TasteSettings,
    seed: int,
) -> TasteTables:
    """Taste tables of a training part (user rows = rows of ``population.train``)."""
    reasons = np.concatenate([tables.like, tables.dislike], axis=1)
    timeline = (train_rows["item_index"].to_numpy(), train_rows["timestamp"].to_numpy())
    rng = RandomTree(seed).generator(Stream.FACTORS)
    latest = latest_items(population, train_rows, max(settings.recent_items))
    return fit_taste(
        population.train,
        timeline,
        latest,
        reasons,
        len(bank.texts),
        like_threshold=like_threshold,
        settings=settings,
        rng=rng,
    )


def latest_items(population: Population, train_rows: pd.DataFrame, n: int) -> np.ndarray:
    """``(rows of population.train, n)``: each agent's source user's latest ``n`` training items, newest
    last, ``-1`` padded on the left (rows of users without an agent stay empty: no agent reads them)."""
    out = np.full((population.train.shape[0], n), -1, dtype=np.int64)
    row_of = dict(zip(population.users.tolist(), population.user_rows.tolist(), strict=True))
    for user, group in train_rows.groupby("user", sort=False):
        row = row_of.get(user)
        if row is not None:
            tail = group["item_index"].to_numpy()[-n:]  # rows are in time order per user
            out[row, n - len(tail) :] = tail
    return out


def context_for(
    population: Population,
    train_rows: pd.DataFrame,
    tables: CatalogTables,
    bank: ReasonBank,
    stat_model: SASRec,
    *,
    taste: TasteTables,
    like_threshold: float,
    max_len: int,
) -> PairContext:
    """Feature context of a population: statistical summaries of each agent's training sequence, taste."""
    stat = stat_tables(stat_model, sequences(train_rows, population.users, like_threshold), max_len)
    return PairContext(tables, bank, stat, taste, population.user_rows)


@dataclass(frozen=True)
class SplitView:
    """One split seen by the models: one agent per user, memories and feature context from its training rows."""

    population: Population
    memory: WorkingMemory
    context: PairContext
    held: pd.DataFrame  # held-out rows with ``agent`` and ``item_index``


def split_view(
    parts: SplitParts,
    tables: CatalogTables,
    bank: ReasonBank,
    stat_model: SASRec,
    taste: TasteSettings,
    *,
    like_threshold: float,
    capacity: int,
    max_len: int,
    seed: int,
) -> SplitView:
    """Memories, taste tables and feature context of a split (the item profiles are ``tables``/``bank``)."""
    memory, _ = seed_memory(parts.population, parts.train_rows, tables, capacity, like_threshold)
    tastes = taste_for(
        parts.population, parts.train_rows, tables, bank, like_threshold=like_threshold, settings=taste, seed=seed
    )
    context = context_for(
        parts.population,
        parts.train_rows,
        tables,
        bank,
        stat_model,
        taste=tastes,
        like_threshold=like_threshold,
        max_len=max_len,
    )
    return SplitView(parts.population, memory, context, parts.held)


@dataclass(frozen=True)
class PairSample:
    """Held-out positives (with their like label) and, per positive, ``K`` items the user never rated."""

    agents: np.ndarray  # (P,)
    slates: np.ndarray  # (P, 1 + K): column 0 the real item, then never-rated items
    liked: np.ndarray  # (P,) bool


@dataclass(frozen=True)
class LabelledPairs(PairSample):
    """A :class:`PairSample` with its feature tensor."""

    features: np.ndarray  # (P, 1 + K, F)


def rated_matrix(dataset: Dataset, users: np.ndarray) -> sp.csr_matrix:
    """Bool users x items matrix (rows in ``users`` order) of every rating in ``dataset``."""
    row_of = {u: i for i, u in enumerate(users)}
    inter = dataset.interactions
    rows = inter["user"].map(row_of).to_numpy()
    cols = dataset.item_index(inter["item"].tolist())
    return sp.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(len(users), dataset.n_items))


def sample_pairs(
    held: pd.DataFrame, rated: sp.csr_matrix, negatives: int, like_threshold: float, rng: np.random.Generator
) -> PairSample:
    """Pairs for the ``held`` rows; ``rated`` (users x items, by agent) marks what each user ever rated."""
    agents = held["agent"].to_numpy()
    positives = held["item_index"].to_numpy()
    n_items = rated.shape[1]
    negs = rng.integers(0, n_items, size=(len(agents), negatives))
    while True:
        clash = np.asarray(rated[np.repeat(agents, negatives), negs.ravel()]).reshape(negs.shape) != 0
        if not clash.any():
            break
        negs[clash] = rng.integers(0, n_items, size=int(clash.sum()))
    slates = np.concatenate([positives[:, None], negs], axis=1)
    return PairSample(agents, slates, held["rating"].to_numpy() >= like_threshold)


def label_pairs(view: SplitView, sample: PairSample) -> LabelledPairs:
    """The feature tensor of ``sample`` read from ``view`` (its memories and context)."""
    features, _ = pair_features(view.memory, sample.agents, sample.slates, view.context)
    return LabelledPairs(sample.agents, sample.slates, sample.liked, features)
