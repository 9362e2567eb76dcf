"""Train, cache and reload every learned decision model of a dataset split (the *decision bundle*).

Splits (never touching the held-out test part; see :mod:`tastesim.scoring.views`): a statistical model
learns from the inner sequences; the factorisations' sizes are chosen on the validation part
(:mod:`tastesim.scoring.tuning`); the learned ensemble and the distilled scorer learn validation pairs (each
real validation item against ``negatives`` items the user never rated), with features read from memories,
that statistical model and taste tables built from the inner part. At simulation or test time the same
weights read features built the same way from the whole training part: the statistical model retrained on
the training sequences (same settings and seed) and the taste tables refitted with the chosen sizes, so the
features keep the relation "built from everything before, scoring what comes next" they were learned with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tastesim.agents.population import Population
from tastesim.catalog.tables import CatalogTables, ReasonBank
from tastesim.data.dataset import Dataset
from tastesim.data.split import split_by_time
from tastesim.rng import RandomTree, Stream
from tastesim.scoring.distilled import agreement, fit_distilled
from tastesim.scoring.ensemble import fit_learned
from tastesim.scoring.features import FEATURES, PairContext
from tastesim.scoring.heads import Heads, HeadTargets
from tastesim.scoring.statistical import SASRec, StatSettings, fit_sasrec
from tastesim.scoring.taste import TasteSettings
from tastesim.scoring.tuning import tune_taste
from tastesim.scoring.views import (
    LabelledPairs,
    PairSample,
    SplitParts,
    SplitView,
    context_for,
    inner_dataset,
    label_pairs,
    rated_matrix,
    sample_pairs,
    sequences,
    split_parts,
    split_view,
    taste_for,
)

__all__ = [
    "BundleSettings",
    "Core",
    "DecisionBundle",
    "LabelledPairs",
    "SplitView",
    "agent_context",
    "fit_scorers",
    "inner_dataset",
    "load_or_train",
    "rated_matrix",
    "test_split",
    "train_bundle",
    "train_core",
    "validation_pairs",
]

Progress = Callable[[str, int, int], None]  # (phase, done, total)
# The like heads learn from validation ratings alone. With few of the rarer label (dislikes, on review data
# where 95 % of ratings are likes) a combination of every feature overfits and does not carry over to the
# test period; below EVENTS_PER_FEATURE rarer labels per feature (the events-per-variable rule of logistic
# regression) the like heads read only the bias baseline's score (its ranking, calibrated): what little the
# validation labels say then goes into the click head. Decided from validation counts alone.
EVENTS_PER_FEATURE = 10
COMPACT_LIKE_FEATURES = (("rating_bias",), ("item_bias", "user_bias"))  # the first set present in the input
_FORMAT = 3  # bump when the saved layout or the training changes (the feature names are hashed too)


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
    taste: TasteSettings = field(default_factory=TasteSettings)


@dataclass(frozen=True)
class Core:
    """What training learns before reading any item profile: the statistical model, the factorisations'
    sizes chosen on validation, and the validation split with its pairs."""

    stat_inner: SASRec  # trained on the inner part: validation features
    stat_model: SASRec  # trained on the whole training part: test and simulation features
    taste: TasteSettings
    parts: SplitParts  # the training part split into inner (train rows) and validation (held)
    validation: PairSample
    base_like_rate: float
    facts: dict


def train_core(dataset: Dataset, settings: BundleSettings, progress: Progress | None = None) -> Core:
    """Train the statistical model on the inner part and tune the taste tables on the validation part."""
    report = progress or (lambda _p, _d, _t: None)
    tree = RandomTree(settings.seed)
    inner = inner_dataset(dataset, settings.train_fraction)
    parts = split_parts(inner, settings.train_fraction, settings.seed)
    stat_models = []
    for phase, split in (
        ("on the inner part", parts),
        ("on the training part", split_parts(dataset, settings.train_fraction, settings.seed)),
    ):
        seqs = sequences(split.train_rows, split.population.users, settings.like_threshold)
        stat_models.append(
            fit_sasrec(
                seqs,
                dataset.n_items,
                settings.stat,
                tree.torch_generator(Stream.STATISTICAL),
                lambda done, total, phase=phase: report(f"training statistical model {phase}", done, total),
            )
        )
    rated = rated_matrix(dataset, parts.population.users)
    validation = sample_pairs(
        parts.held, rated, settings.negatives, settings.like_threshold, tree.generator(Stream.NEGATIVES)
    )
    report("tuning factorisations on validation", 0, 1)
    taste, facts = tune_taste(
        parts.population.train, validation, settings.taste, settings.like_threshold, settings.seed
    )
    report("tuning factorisations on validation", 1, 1)
    base = float((parts.train_rows["rating"].to_numpy() >= settings.like_threshold).mean())
    facts |= {"mf_factors": taste.mf_factors, "mf_reg": taste.mf_reg, "als_factors": taste.als_factors}
    facts |= {"als_alpha": taste.als_alpha}
    return Core(stat_models[0], stat_models[1], taste, parts, validation, base, facts)


def validation_pairs(core: Core, tables: CatalogTables, bank: ReasonBank, settings: BundleSettings) -> LabelledPairs:
    """Labelled validation pairs (features from the inner part) for the profiles in ``tables``/``bank``."""
    view = _view(core.parts, tables, bank, core.stat_inner, core.taste, settings=settings)
    return label_pairs(view, core.validation)


def _view(
    parts: SplitParts,
    tables: CatalogTables,
    bank: ReasonBank,
    stat_model: SASRec,
    taste: TasteSettings,
    *,
    settings: BundleSettings,
) -> SplitView:
    return split_view(
        parts,
        tables,
        bank,
        stat_model,
        taste,
        like_threshold=settings.like_threshold,
        capacity=settings.capacity,
        max_len=settings.stat.max_len,
        seed=settings.seed,
    )


def test_split(
    dataset: Dataset, tables: CatalogTables, bank: ReasonBank, core: Core | DecisionBundle, settings: BundleSettings
) -> SplitView:
    """The evaluation split: features from the whole training part, the held-out test rows."""
    parts = split_parts(dataset, settings.train_fraction, settings.seed)
    return _view(parts, tables, bank, core.stat_model, core.taste, settings=settings)


@dataclass(frozen=True)
class DecisionBundle:
    """The trained statistical model, tuned taste settings, learned ensemble and distilled scorer."""

    settings: BundleSettings
    stat_model: SASRec
    taste: TasteSettings
    learned: Heads
    distilled: Heads
    base_like_rate: float
    facts: dict  # agreement of the distilled scorer with the ensemble on held-out validation users, sizes

    @property
    def stat_threshold(self) -> float:
        """Like log-odds of the training like rate (the statistical vote's threshold)."""
        rate = min(max(self.base_like_rate, 1e-3), 1 - 1e-3)
        return float(np.log(rate / (1 - rate)))


def _targets(pairs: LabelledPairs) -> tuple[np.ndarray, HeadTargets]:
    """Per slot of each validation slate: interacted (column 0), like label (column 0 only)."""
    p, width = pairs.slates.shape
    interact = np.zeros((p, width), dtype=np.float32)
    interact[:, 0] = 1
    like = np.zeros((p, width), dtype=np.float32)
    like[:, 0] = pairs.liked
    known = np.zeros((p, width), dtype=bool)
    known[:, 0] = True
    return pairs.features, HeadTargets(interact, like, known)


def fit_scorers(
    pairs: LabelledPairs, settings: BundleSettings, columns: Sequence[int] | None = None
) -> tuple[Heads, Heads, dict]:
    """The learned ensemble and the distilled scorer on validation pairs (one user in five held back to
    measure their agreement); ``columns`` restricts both to some features (the ablations)."""
    tree = RandomTree(settings.seed)
    x, targets = _targets(pairs)
    names = list(FEATURES) if columns is None else [FEATURES[c] for c in columns]
    if columns is not None:
        x = x[..., list(columns)]
    n_users = int(pairs.agents.max()) + 1 if len(pairs.agents) else 0
    check = np.isin(pairs.agents, tree.generator(Stream.CHECK_USERS).permutation(n_users)[::5])
    fit = ~check
    events = int(min(pairs.liked[fit].sum(), (~pairs.liked[fit]).sum()))
    compact = events < EVENTS_PER_FEATURE * len(names)
    like_columns = None
    if compact:
        usable = [group for group in COMPACT_LIKE_FEATURES if set(group) <= set(names)]
        like_columns = [names.index(f) for f in usable[0]] if usable else []
    flat = HeadTargets(targets.interact[fit].ravel(), targets.like[fit].ravel(), targets.like_known[fit].ravel())
    learned = fit_learned(x[fit].reshape(-1, x.shape[-1]), flat, tree.torch_generator(Stream.LEARNED), like_columns)
    part = HeadTargets(targets.interact[fit], targets.like[fit], targets.like_known[fit])
    distilled = fit_distilled(
        x[fit],
        part,
        learned,
        tree.torch_generator(Stream.DISTILLED),
        hidden=settings.hidden,
        teacher_weight=settings.teacher_weight,
        like_columns=like_columns,
    )
    like_agree, pick_distilled, pick_learned = agreement(distilled, learned, x[check])
    facts = {
        "check_like_agreement": like_agree,
        "check_pick_distilled": pick_distilled,
        "check_pick_learned": pick_learned,
        "validation_positives": len(pairs.agents),
        "like_events": events,
        "compact_like_head": compact,
        "check_positives": int(check.sum()),
    }
    return learned, distilled, facts


def train_bundle(
    dataset: Dataset,
    tables: CatalogTables,
    bank: ReasonBank,
    settings: BundleSettings,
    progress: Progress | None = None,
    *,
    core: Core | None = None,
) -> tuple[DecisionBundle, LabelledPairs]:
    """Train every model on the training part of ``dataset``; returns the bundle and the validation pairs.

    ``core`` reuses a :func:`train_core` result (the same for any item profiles).
    """
    report = progress or (lambda _p, _d, _t: None)
    core = core or train_core(dataset, settings, report)
    report("fitting ensemble and distilled scorer", 0, 1)
    pairs = validation_pairs(core, tables, bank, settings)
    learned, distilled, facts = fit_scorers(pairs, settings)
    report("fitting ensemble and distilled scorer", 1, 1)
    bundle = DecisionBundle(
        settings, core.stat_model, core.taste, learned, distilled, core.base_like_rate, core.facts | facts
    )
    return bundle, pairs


def bundle_key(dataset: Dataset, tables: CatalogTables, bank: ReasonBank, settings: BundleSettings) -> str:
    """Content hash of everything the bundle depends on."""
    h = hashlib.sha256()
    inter = dataset.interactions
    h.update(pd.util.hash_pandas_object(inter[["user", "item", "rating", "timestamp"]], index=False).values.tobytes())
    h.update("\n".join(dataset.items["item"]).encode())
    for array in (tables.like, tables.dislike, tables.category_mask, bank.keywords):
        h.update(np.ascontiguousarray(array).tobytes())
    h.update(bank.vectors.round(4).tobytes())
    h.update(json.dumps({"format": _FORMAT, "features": FEATURES, **asdict(settings)}, sort_keys=True).encode())
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
            "taste": json.dumps(asdict(bundle.taste)),
            "facts": json.dumps(bundle.facts),
        },
        tmp,
    )
    tmp.replace(path)


def _load(path: Path, settings: BundleSettings) -> DecisionBundle:
    saved = torch.load(path, weights_only=True)
    stat = SASRec(int(saved["n_items"]), settings.stat)
    stat.load_state_dict(saved["stat"])
    learned = Heads(len(FEATURES), 0, like_columns=_like_columns(saved["learned"]))
    learned.load_state_dict(saved["learned"])
    distilled = Heads(len(FEATURES), settings.hidden, slate=True, like_columns=_like_columns(saved["distilled"]))
    distilled.load_state_dict(saved["distilled"])
    base, facts = float(saved["base_like_rate"]), json.loads(saved["facts"])
    taste = TasteSettings(**json.loads(saved["taste"]))
    return DecisionBundle(settings, stat.eval(), taste, learned.eval(), distilled.eval(), base, facts)


def _like_columns(state: dict) -> list[int] | None:
    return state["like_index"].tolist() if "like_index" in state else None


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
    """Feature context of a simulation's agents: each reads its source user's training part (statistical
    summary of its sequence; taste tables fitted on the training part with the bundle's tuned sizes)."""
    settings = bundle.settings
    is_train = split_by_time(dataset.interactions, settings.train_fraction).to_numpy()
    train_rows = dataset.interactions[is_train]
    train_rows = train_rows.assign(item_index=dataset.item_index(train_rows["item"].tolist()))
    taste = taste_for(
        population,
        train_rows,
        tables,
        bank,
        like_threshold=settings.like_threshold,
        settings=bundle.taste,
        seed=settings.seed,
    )
    return context_for(
        population,
        train_rows,
        tables,
        bank,
        bundle.stat_model,
        taste=taste,
        like_threshold=settings.like_threshold,
        max_len=settings.stat.max_len,
    )
