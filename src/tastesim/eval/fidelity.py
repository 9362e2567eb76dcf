"""The fidelity protocols: held-out like prediction and rated-vs-never-rated discrimination, with ablations.

Splits: each user's earlier ``train_fraction`` of ratings trains everything (see
:mod:`tastesim.scoring.bundle`), the later part is the test. Decision thresholds, the factorisations'
sizes and every weight are chosen on the validation part (inside the training part), never on the test.

* **Like prediction**: for every held-out rating, score the item; like = rating >= threshold. AUC,
  balanced accuracy, F1 of both classes.
* **Discrimination** (Agent4Rec / SimUSER): each held-out rated item shown together with 1, 3 or 9 items
  the user never rated; the component says "rated" when its interaction score passes its validation
  threshold. Accuracy, precision, recall, F1 of the "rated" class; also AUC, and ``pick``: how often the
  rated item scores highest in its group (for 1:1, "picks the rated item of the pair"). The distilled
  scorer sees the group as a slate (as Agent4Rec's agents see the candidates together).

Components: keyword, similarity, statistical, vote, learned, distilled; baselines in the same run on the
same pairs: popularity, the shrunk user + item rating bias, and matrix factorisation (the biased explicit
factorisation's predicted rating for likes, implicit ALS for discrimination; sizes tuned on validation).

Ablations retrain the learned ensemble and distilled scorer on the same pairs: per item-profile variant
(objective reasons only, subjective only, both) with and without the memory features, and per feature
group of :data:`~tastesim.scoring.features.FEATURE_GROUPS` (all features but that group; the previous
feature set alone), so the report says which evidence moved the AUC and by how much.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from tastesim.catalog.tables import CatalogTables, ReasonBank
from tastesim.data.dataset import Dataset
from tastesim.eval.metrics import auc, best_threshold, classification
from tastesim.rng import RandomTree, Stream
from tastesim.scoring.bundle import (
    BundleSettings,
    DecisionBundle,
    LabelledPairs,
    fit_scorers,
    rated_matrix,
    test_split,
    train_bundle,
    train_core,
)
from tastesim.scoring.ensemble import vote_score
from tastesim.scoring.features import FEATURE_GROUPS, FEATURES, MEMORY_FEATURES, PREVIOUS_FEATURES
from tastesim.scoring.heads import Heads
from tastesim.scoring.views import label_pairs, sample_pairs

__all__ = [
    "ABLATION_METRICS",
    "BASELINES",
    "COMPONENTS",
    "RATIOS",
    "Scorer",
    "evaluate",
    "fidelity",
    "pick_rate",
]

COMPONENTS = ("keyword", "similarity", "statistical", "vote", "learned", "distilled", "popularity", "bias", "mf")
BASELINES = ("popularity", "bias", "mf")
RATIOS = (1, 3, 9)
ABLATION_METRICS = (
    "auc",
    "balanced_accuracy",
    "f1_like",
    "f1_dislike",
    "discrimination.1_1.f1",
    "discrimination.1_9.f1",
    "discrimination.1_9.pick",
)
_VOTERS = ("keyword", "similarity", "statistical")
_COL = {name: i for i, name in enumerate(FEATURES)}

Scorer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # features (P, W, F) -> (like, interaction)


def _heads(heads: Heads, columns: list[int] | None = None) -> Scorer:
    def score(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        interact, like = heads.logits(x if columns is None else x[..., columns])
        return like, interact

    return score


def scorers(bundle: DecisionBundle) -> dict[str, Scorer]:
    """``{component: scorer}``: each maps slates ``(P, W, F)`` to like and interaction scores ``(P, W)``;
    the vote's interaction score is filled in per protocol (it counts the voters' thresholded decisions)."""

    def col(x: np.ndarray, name: str) -> np.ndarray:
        return x[..., _COL[name]]

    def bias(x: np.ndarray) -> np.ndarray:
        return col(x, "item_bias") + col(x, "user_bias")

    def vote(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = vote_score(x, bundle.stat_threshold).astype(np.float32)
        return v, np.zeros_like(v)

    return {
        "keyword": lambda x: (col(x, "kw_pos") - col(x, "kw_neg"), col(x, "kw_pos") + col(x, "kw_neg")),
        "similarity": lambda x: (col(x, "sim_pos") - col(x, "sim_neg"), col(x, "appeal")),
        "statistical": lambda x: (col(x, "stat_like"), col(x, "stat_interact")),
        "vote": vote,
        "learned": _heads(bundle.learned),
        "distilled": _heads(bundle.distilled),
        "popularity": lambda x: (col(x, "popularity"), col(x, "popularity")),
        "bias": lambda x: (bias(x), bias(x)),
        "mf": lambda x: (bias(x) + col(x, "mf_like"), col(x, "cf_interact")),
    }


def evaluate(validation: LabelledPairs, test: LabelledPairs, components: Mapping[str, Scorer]) -> dict[str, float]:
    """Both protocols for every component; flat keys like ``distilled.discrimination.1_1.accuracy``."""
    out: dict[str, float] = {}
    for name, score in components.items():
        like_val, like_test = score(validation.features[:, :1])[0][:, 0], score(test.features[:, :1])[0][:, 0]
        threshold = 0.0 if name == "vote" else best_threshold(like_val, validation.liked, "balanced_accuracy")
        pred = like_test > threshold if name != "vote" else like_test >= threshold  # a tied vote likes
        got = classification(pred, test.liked)
        out[f"{name}.auc"] = auc(like_test, test.liked)
        out[f"{name}.balanced_accuracy"] = got["balanced_accuracy"]
        out[f"{name}.f1_like"] = got["f1"]
        out[f"{name}.f1_dislike"] = got["f1_negative"]
    for ratio in RATIOS:
        out.update(_discrimination(validation, test, components, ratio))
    return out


def _discrimination(
    validation: LabelledPairs, test: LabelledPairs, components: Mapping[str, Scorer], ratio: int
) -> dict[str, float]:
    width = 1 + ratio
    labels_val = np.tile(np.arange(width) == 0, len(validation.agents))
    labels_test = np.tile(np.arange(width) == 0, len(test.agents))
    decided: dict[str, np.ndarray] = {}
    votes_val, votes_test = 0, 0
    out: dict[str, float] = {}
    for name, score in components.items():
        if name == "vote":
            continue
        groups_val = score(validation.features[:, :width])[1]
        groups_test = score(test.features[:, :width])[1]
        score_val, score_test = groups_val.ravel(), groups_test.ravel()
        threshold = best_threshold(score_val, labels_val, "accuracy")
        decided[name] = score_test > threshold
        if name in _VOTERS:
            votes_val = votes_val + (score_val > threshold)
            votes_test = votes_test + decided[name]
        out[f"{name}.discrimination.1_{ratio}.auc"] = auc(score_test, labels_test)
        out[f"{name}.discrimination.1_{ratio}.pick"] = pick_rate(groups_test)
    if "vote" in components:
        decided["vote"] = votes_test >= 2
        vote_groups = np.asarray(votes_test, dtype=float).reshape(-1, width)
        out[f"vote.discrimination.1_{ratio}.auc"] = auc(vote_groups.ravel(), labels_test)
        out[f"vote.discrimination.1_{ratio}.pick"] = pick_rate(vote_groups)
    for name, pred in decided.items():
        got = classification(pred, labels_test)
        for metric in ("accuracy", "precision", "recall", "f1"):
            out[f"{name}.discrimination.1_{ratio}.{metric}"] = got[metric]
    return out


def pick_rate(groups: np.ndarray) -> float:
    """Share of groups ``(P, 1 + R)`` whose rated item (column 0) scores highest; a tie at the top earns
    ``1 / (items tied)``, so a constant score picks by chance."""
    top = groups.max(axis=1, keepdims=True)
    tied = (groups == top).sum(axis=1)
    return float(np.mean((groups[:, 0] == top[:, 0]) / tied)) if len(groups) else float("nan")


def _ablation(
    validation: LabelledPairs, test: LabelledPairs, settings: BundleSettings, keep: tuple[str, ...]
) -> dict[str, float]:
    """The distilled scorer retrained on the features in ``keep`` only: its :data:`ABLATION_METRICS`."""
    columns = [_COL[name] for name in FEATURES if name in keep]
    _, distilled, _ = fit_scorers(validation, settings, columns)
    got = evaluate(validation, test, {"distilled": _heads(distilled, columns)})
    return {metric: got[f"distilled.{metric}"] for metric in ABLATION_METRICS}


def fidelity(
    dataset: Dataset,
    variants: Mapping[str, tuple[CatalogTables, ReasonBank]],
    settings: BundleSettings,
    progress: Callable[[str, int, int], None] | None = None,
    *,
    main: str | None = None,
) -> tuple[dict[str, float], dict]:
    """Train on the training part of ``dataset`` and evaluate on its held-out part.

    Args:
        dataset: The data (its held-out part is the test).
        variants: Item profiles to compare, by name (``objective``, ``subjective``, ``both``), as catalog
            tables; every variant shares the statistical model, factorisations and pairs.
        settings: Training settings.
        progress: Called as ``(phase, done, total)``.
        main: The variant whose components are reported in full (default: the last one).

    Returns:
        The flat metrics (components of ``main``; ``ablation.<variant>.<memory|no_memory>.<metric>``;
        ``features.<set>.<metric>``) and facts about the run (sizes, tuned sizes, training agreement).
    """
    if settings.negatives < max(RATIOS):
        raise ValueError(f"fidelity needs negatives >= {max(RATIOS)} (got {settings.negatives})")
    report = progress or (lambda _p, _d, _t: None)
    main = main or list(variants)[-1]
    core = train_core(dataset, settings, report)
    metrics: dict[str, float] = {}
    facts: dict = {}
    sample, users = None, 0
    for index, (name, (tables, bank)) in enumerate(variants.items()):
        report("training and scoring item-profile variants", index, len(variants))
        bundle, validation = train_bundle(dataset, tables, bank, settings, core=core)
        view = test_split(dataset, tables, bank, bundle, settings)
        if sample is None:
            rated = rated_matrix(dataset, view.population.users)
            rng = RandomTree(settings.seed).generator(Stream.TEST_NEGATIVES)
            sample = sample_pairs(view.held, rated, max(RATIOS), settings.like_threshold, rng)
            users = len(view.population.users)
        test = label_pairs(view, sample)
        if name == main:
            metrics.update(evaluate(validation, test, scorers(bundle)))
            facts.update(bundle.facts)
            report("ablations by feature group", 0, len(FEATURE_GROUPS) + 1)
            for step, (group, columns) in enumerate(FEATURE_GROUPS.items()):
                kept = tuple(f for f in FEATURES if f not in columns)
                got = _ablation(validation, test, settings, kept)
                metrics.update({f"features.without {group}.{k}": v for k, v in got.items()})
                report("ablations by feature group", step + 1, len(FEATURE_GROUPS) + 1)
            previous = _ablation(validation, test, settings, PREVIOUS_FEATURES)
            metrics.update({f"features.previous features.{k}": v for k, v in previous.items()})
        full = evaluate(validation, test, {"distilled": _heads(bundle.distilled)})
        metrics.update({f"ablation.{name}.memory.{k}": full[f"distilled.{k}"] for k in ABLATION_METRICS})
        without = _ablation(validation, test, settings, tuple(f for f in FEATURES if f not in MEMORY_FEATURES))
        metrics.update({f"ablation.{name}.no_memory.{k}": v for k, v in without.items()})
        facts[f"reasons.{name}"] = len(bank.texts)
    report("training and scoring item-profile variants", len(variants), len(variants))
    assert sample is not None
    facts |= {
        "dataset": dataset.name,
        "users": users,
        "test_ratings": len(sample.agents),
        "test_like_share": float(sample.liked.mean()) if len(sample.liked) else float("nan"),
        "validation_ratings": len(core.validation.agents),
        "variants": list(variants),
        "main_variant": main,
    }
    return metrics, facts
