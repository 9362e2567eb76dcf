"""Train, cache and reload every learned decision model of a dataset split (the *decision bundle*).

Splits (never touching the held-out test part): each user's earlier ``train_fraction`` of ratings is the
*training part*; inside it, the earlier ``train_fraction`` again is the *inner* part and the rest the
*validation* part. The statistical model learns from the inner sequences; the learned ensemble and the
distilled scorer learn from validation pairs (each real validation item against ``negatives`` items the
user never rated), with features read from memories seeded by the inner part. At simulation or test time
the same weights read features built from the whole training part.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from tastesim.agents.population import Population, build_population, seed_memory, split_by_time
from tastesim.catalog.tables import CatalogTables, ReasonBank
from tastesim.data.dataset import Dataset
from tastesim.memory.working import WorkingMemory
from tastesim.rng import RandomTree, Stream
from tastesim.scoring.distilled import agreement, fit_distilled
from tastesim.scoring.ensemble import fit_learned
from tastesim.scoring.features import FEATURES, PairContext, pair_features, rating_biases
from tastesim.scoring.heads import Heads, HeadTargets
from tastesim.scoring.statistical import SASRec, StatSettings, fit_sasrec, stat_tables

__all__ = [
    "BundleSettings",
    "DecisionBundle",
    "LabelledPairs",
    "SplitView",
    "agent_context",
    "inner_dataset",
    "labelled_pairs",
    "load_or_train",
    "rated_matrix",
    "split_view",
    "train_bundle",
    "validation_pairs",
]

Progress = Callable[[str, int, int], None]  # (phase, done, total)
_FORMAT = 1  # bump when the saved layout or the training changes


@dataclass(frozen=True)
class BundleSettings:
    """Everything the trained weights depend on besides the data and the item profiles."""

    seed: int = 0
    train_fraction: float = 0.8
    like_threshold: float = 3.0
    capacity: int = 16
    negatives: int = 9
    hidden: int = 32
    teacher_weight: float = 0.5
    stat: StatSettings = field(default_factory=StatSettings)


def inner_dataset(dataset: Dataset, train_fraction: float) -> Dataset:
    """The training part of ``dataset`` (each user's earlier ``train_fraction`` of ratings)."""
    keep = split_by_time(dataset.interactions, train_fraction).to_numpy()
    return Dataset(dataset.name, dataset.interactions[keep].reset_index(drop=True), dataset.items, dataset.users)


@dataclass(frozen=True)
class SplitView:
    """One split seen by the models: one agent per user, memories and feature context from its training rows."""

    population: Population
    memory: WorkingMemory
    context: PairContext
    held: pd.DataFrame  # held-out rows with ``agent`` and ``item_index``


def _sequences(train_rows: pd.DataFrame, users: np.ndarray, like_threshold: float) -> list[tuple[np.ndarray, ...]]:
    grouped = dict(iter(train_rows.groupby("user", sort=False)))
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    return [
        (g["item_index"].to_numpy(), (g["rating"].to_numpy() >= like_threshold).astype(np.int64))
        if (g := grouped.get(u)) is not None
        else empty
        for u in users
    ]


def split_view(
    dataset: Dataset,
    tables: CatalogTables,
    bank: ReasonBank,
    stat_model: SASRec,
    settings: BundleSettings,
) -> SplitView:
    """Split ``dataset`` by time at ``settings.train_fraction`` and build memories and feature context."""
    tree = RandomTree(settings.seed)
    population, train_rows = build_population(dataset, None, settings.train_fraction, tree.generator(Stream.POPULATION))
    memory, _ = seed_memory(population, train_rows, tables, settings.capacity, settings.like_threshold)
    sequences = _sequences(train_rows, population.users, settings.like_threshold)
    stat = stat_tables(stat_model, sequences, settings.stat.max_len)
    context = PairContext(tables, bank, stat, rating_biases(population.train), population.user_rows)
    is_train = split_by_time(dataset.interactions, settings.train_fraction).to_numpy()
    agent_of = {u: i for i, u in enumerate(population.users)}
    held = dataset.interactions[~is_train]
    held = held.assign(
        agent=held["user"].map(agent_of).to_numpy(), item_index=dataset.item_index(held["item"].tolist())
    )
    return SplitView(population, memory, context, held.reset_index(drop=True))


@dataclass(frozen=True)
class LabelledPairs:
    """Held-out positives (with their like label) and, per positive, ``K`` items the user never rated."""

    agents: np.ndarray  # (P,)
    slates: np.ndarray  # (P, 1 + K): column 0 the real item, then never-rated items
    liked: np.ndarray  # (P,) bool
    features: np.ndarray  # (P, 1 + K, F)


def labelled_pairs(
    view: SplitView, rated: sp.csr_matrix, negatives: int, like_threshold: float, rng: np.random.Generator
) -> LabelledPairs:
    """Pairs for the held-out rows of ``view``; ``rated`` (users x items, by agent) marks what each user ever rated."""
    agents = view.held["agent"].to_numpy()
    positives = view.held["item_index"].to_numpy()
    n_items = rated.shape[1]
    negs = rng.integers(0, n_items, size=(len(agents), negatives))
    while True:
        clash = np.asarray(rated[np.repeat(agents, negatives), negs.ravel()]).reshape(negs.shape) != 0
        if not clash.any():
            break
        negs[clash] = rng.integers(0, n_items, size=int(clash.sum()))
    slates = np.concatenate([positives[:, None], negs], axis=1)
    features, _ = pair_features(view.memory, agents, slates, view.context)
    liked = view.held["rating"].to_numpy() >= like_threshold
    return LabelledPairs(agents, slates, liked, features)


def validation_pairs(
    dataset: Dataset, tables: CatalogTables, bank: ReasonBank, stat_model: SASRec, settings: BundleSettings
) -> LabelledPairs:
    """Labelled pairs of the validation part (features read from the inner part)."""
    view = split_view(inner_dataset(dataset, settings.train_fraction), tables, bank, stat_model, settings)
    rated = rated_matrix(dataset, view.population.users)
    rng = RandomTree(settings.seed).generator(Stream.NEGATIVES)
    return labelled_pairs(view, rated, settings.negatives, settings.like_threshold, rng)


def _targets(pairs: LabelledPairs) -> tuple[np.ndarray, HeadTargets]:
    p, width, f = pairs.features.shape
    interact = np.zeros((p, width), dtype=np.float32)
    interact[:, 0] = 1
    like = np.zeros((p, width), dtype=np.float32)
    like[:, 0] = pairs.liked
    known = np.zeros((p, width), dtype=bool)
    known[:, 0] = True
    return pairs.features.reshape(-1, f), HeadTargets(interact.ravel(), like.ravel(), known.ravel())


@dataclass(frozen=True)
class DecisionBundle:
    """The trained statistical model, learned ensemble and distilled scorer, with training facts."""

    settings: BundleSettings
    stat_model: SASRec
    learned: Heads
    distilled: Heads
    base_like_rate: float
    facts: dict  # agreement of the distilled scorer with the ensemble on held-out validation users, sizes

    @property
    def stat_threshold(self) -> float:
        """Like log-odds of the training like rate (the statistical vote's threshold)."""
        rate = min(max(self.base_like_rate, 1e-3), 1 - 1e-3)
        return float(np.log(rate / (1 - rate)))


def rated_matrix(dataset: Dataset, users: np.ndarray) -> sp.csr_matrix:
    """Bool users x items matrix (rows in ``users`` order) of every rating in ``dataset``."""
    row_of = {u: i for i, u in enumerate(users)}
    inter = dataset.interactions
    rows = inter["user"].map(row_of).to_numpy()
    cols = dataset.item_index(inter["item"].tolist())
    return sp.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(len(users), dataset.n_items))


def train_bundle(
    dataset: Dataset,
    tables: CatalogTables,
    bank: ReasonBank,
    settings: BundleSettings,
    progress: Progress | None = None,
) -> tuple[DecisionBundle, LabelledPairs]:
    """Train every model on the training part of ``dataset``; returns the bundle and the validation pairs."""
    report = progress or (lambda _p, _d, _t: None)
    tree = RandomTree(settings.seed)
    inner = inner_dataset(dataset, settings.train_fraction)
    population, train_rows = build_population(inner, None, settings.train_fraction, tree.generator(Stream.POPULATION))
    sequences = _sequences(train_rows, population.users, settings.like_threshold)
    stat_model = fit_sasrec(
        sequences,
        dataset.n_items,
        settings.stat,
        tree.torch_generator(Stream.STATISTICAL),
        lambda done, total: report("training statistical model", done, total),
    )
    report("fitting ensemble and distilled scorer", 0, 2)
    pairs = validation_pairs(dataset, tables, bank, stat_model, settings)
    n_users = int(pairs.agents.max()) + 1 if len(pairs.agents) else 0
    check = np.isin(pairs.agents, tree.generator(Stream.CHECK_USERS).permutation(n_users)[::5])
    x, targets = _targets(pairs)
    fit_rows = ~np.repeat(check, pairs.slates.shape[1])
    fit = HeadTargets(targets.interact[fit_rows], targets.like[fit_rows], targets.like_known[fit_rows])
    learned = fit_learned(x[fit_rows], fit, tree.torch_generator(Stream.LEARNED))
    report("fitting ensemble and distilled scorer", 1, 2)
    distilled = fit_distilled(
        x[fit_rows],
        fit,
        learned,
        tree.torch_generator(Stream.DISTILLED),
        hidden=settings.hidden,
        teacher_weight=settings.teacher_weight,
    )
    report("fitting ensemble and distilled scorer", 2, 2)
    like_agree, interact_agree = agreement(distilled, learned, x[~fit_rows])
    base = float((train_rows["rating"].to_numpy() >= settings.like_threshold).mean())
    facts = {
        "check_like_agreement": like_agree,
        "check_interact_agreement": interact_agree,
        "validation_positives": len(pairs.agents),
        "check_positives": int(check.sum()),
    }
    return DecisionBundle(settings, stat_model, learned, distilled, base, facts), pairs


def bundle_key(dataset: Dataset, tables: CatalogTables, bank: ReasonBank, settings: BundleSettings) -> str:
    """Content hash of everything the bundle depends on."""
    h = hashlib.sha256()
    inter = dataset.interactions
    h.update(pd.util.hash_pandas_object(inter[["user", "item", "rating", "timestamp"]], index=False).values.tobytes())
    h.update("\n".join(dataset.items["item"]).encode())
    for array in (tables.like, tables.dislike, tables.category_mask, bank.keywords):
        h.update(np.ascontiguousarray(array).tobytes())
    h.update(bank.vectors.round(4).tobytes())
    h.update(json.dumps({"format": _FORMAT, **asdict(settings)}, sort_keys=True).encode())
    return h.hexdigest()[:20]


def _save(bundle: DecisionBundle, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "n_items": bundle.stat_model.pad,
            "stat": bundle.stat_model.state_dict(),
            "learned": bundle.learned.state_dict(),
            "distilled": bundle.distilled.state_dict(),
            "base_like_rate": bundle.base_like_rate,
            "facts": json.dumps(bundle.facts),
        },
        tmp,
    )
    tmp.replace(path)


def _load(path: Path, settings: BundleSettings) -> DecisionBundle:
    saved = torch.load(path, weights_only=True)
    stat = SASRec(int(saved["n_items"]), settings.stat)
    stat.load_state_dict(saved["stat"])
    learned = Heads(len(FEATURES), 0)
    learned.load_state_dict(saved["learned"])
    distilled = Heads(len(FEATURES), settings.hidden)
    distilled.load_state_dict(saved["distilled"])
    base, facts = float(saved["base_like_rate"]), json.loads(saved["facts"])
    return DecisionBundle(settings, stat.eval(), learned.eval(), distilled.eval(), base, facts)


def load_or_train(
    dataset: Dataset,
    tables: CatalogTables,
    bank: ReasonBank,
    settings: BundleSettings,
    *,
    cache_dir: Path,
    progress: Progress | None = None,
) -> DecisionBundle:
    """The bundle from ``cache_dir/decision-models/`` when trained before, else train and save it."""
    path = Path(cache_dir) / "decision-models" / f"{dataset.name}-{bundle_key(dataset, tables, bank, settings)}.pt"
    if path.exists():
        return _load(path, settings)
    bundle, _ = train_bundle(dataset, tables, bank, settings, progress)
    _save(bundle, path)
    return bundle


def agent_context(
    dataset: Dataset,
    population: Population,
    tables: CatalogTables,
    bank: ReasonBank,
    bundle: DecisionBundle,
) -> PairContext:
    """Feature context of a simulation's agents: each reads its source user's training part."""
    settings = bundle.settings
    is_train = split_by_time(dataset.interactions, settings.train_fraction).to_numpy()
    train_rows = dataset.interactions[is_train]
    train_rows = train_rows.assign(item_index=dataset.item_index(train_rows["item"].tolist()))
    sequences = _sequences(train_rows, population.users, settings.like_threshold)
    stat = stat_tables(bundle.stat_model, sequences, settings.stat.max_len)
    return PairContext(tables, bank, stat, rating_biases(population.train), population.user_rows)
