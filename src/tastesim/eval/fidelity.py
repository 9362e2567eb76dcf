"""The fidelity protocols: held-out like prediction and rated-vs-never-rated discrimination.

Splits: each user's earlier ``train_fraction`` of ratings trains everything (see
:mod:`tastesim.scoring.bundle`), the later part is the test. Decision thresholds are chosen on the
validation part (inside the training part), never on the test.

* **Like prediction**: for every held-out rating, score the item; like = rating >= threshold. AUC,
  balanced accuracy, F1 of both classes.
* **Discrimination** (Agent4Rec / SimUSER): each held-out rated item against 1, 3 or 9 items the user never
  rated; the component says "rated" when its interaction score passes its validation threshold.
  Accuracy, precision, recall, F1 of the "rated" class; also AUC, and ``pick``: how often the rated item
  scores highest in its group (for 1:1, "picks the rated item of the pair").

Components: keyword, similarity, statistical, vote, learned, distilled; baselines: popularity and the
shrunk user + item rating bias, computed in the same run on the same pairs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tastesim.catalog.tables import CatalogTables, ReasonBank
from tastesim.data.dataset import Dataset
from tastesim.eval.metrics import auc, best_threshold, classification
from tastesim.rng import RandomTree, Stream
from tastesim.scoring.bundle import (
    BundleSettings,
    DecisionBundle,
    LabelledPairs,
    labelled_pairs,
    rated_matrix,
    split_view,
    train_bundle,
)
from tastesim.scoring.ensemble import vote_score
from tastesim.scoring.features import FEATURES

__all__ = ["COMPONENTS", "RATIOS", "component_scores", "evaluate", "fidelity", "pick_rate"]

COMPONENTS = ("keyword", "similarity", "statistical", "vote", "learned", "distilled", "popularity", "bias")
RATIOS = (1, 3, 9)
_VOTERS = ("keyword", "similarity", "statistical")
_COL = {name: i for i, name in enumerate(FEATURES)}


def component_scores(x: np.ndarray, bundle: DecisionBundle) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{component: (like score, interaction score)}`` for features ``(..., F)``; the vote's interaction
    score is filled in per protocol (it counts the voters' thresholded decisions)."""

    def col(name: str) -> np.ndarray:
        return x[..., _COL[name]]

    learned = bundle.learned.logits(x)
    distilled = bundle.distilled.logits(x)
    bias = col("item_bias") + col("user_bias")
    vote = vote_score(x, bundle.stat_threshold).astype(np.float32)
    return {
        "keyword": (col("kw_pos") - col("kw_neg"), col("kw_pos") + col("kw_neg")),
        "similarity": (col("sim_pos") - col("sim_neg"), col("appeal")),
        "statistical": (col("stat_like"), col("stat_interact")),
        "vote": (vote, np.zeros_like(vote)),
        "learned": (learned[1], learned[0]),
        "distilled": (distilled[1], distilled[0]),
        "popularity": (col("popularity"), col("popularity")),
        "bias": (bias, bias),
    }


def evaluate(validation: LabelledPairs, test: LabelledPairs, bundle: DecisionBundle) -> dict[str, float]:
    """Both protocols for every component; flat keys like ``distilled.discrimination.1_1.accuracy``."""
    val, tst = component_scores(validation.features, bundle), component_scores(test.features, bundle)
    out: dict[str, float] = {}
    for name in COMPONENTS:
        like_val, like_test = val[name][0][:, 0], tst[name][0][:, 0]
        threshold = 0.0 if name == "vote" else best_threshold(like_val, validation.liked, "balanced_accuracy")
        pred = like_test > threshold if name != "vote" else like_test >= threshold  # a tied vote likes
        got = classification(pred, test.liked)
        out[f"{name}.auc"] = auc(like_test, test.liked)
        out[f"{name}.balanced_accuracy"] = got["balanced_accuracy"]
        out[f"{name}.f1_like"] = got["f1"]
        out[f"{name}.f1_dislike"] = got["f1_negative"]
    for ratio in RATIOS:
        out.update(_discrimination(val, tst, ratio))
    return out


def _discrimination(val: dict, tst: dict, ratio: int) -> dict[str, float]:
    def cut(scores: np.ndarray) -> np.ndarray:
        return scores[:, : 1 + ratio].ravel()

    labels_val = np.tile(np.arange(1 + ratio) == 0, len(val["keyword"][1]))
    labels_test = np.tile(np.arange(1 + ratio) == 0, len(tst["keyword"][1]))
    decided: dict[str, np.ndarray] = {}
    votes_val, votes_test = 0, 0
    out: dict[str, float] = {}
    for name in COMPONENTS:
        if name == "vote":
            continue
        score_val, score_test = cut(val[name][1]), cut(tst[name][1])
        threshold = best_threshold(score_val, labels_val, "accuracy")
        decided[name] = score_test > threshold
        if name in _VOTERS:
            votes_val = votes_val + (score_val > threshold)
            votes_test = votes_test + decided[name]
        out[f"{name}.discrimination.1_{ratio}.auc"] = auc(score_test, labels_test)
        out[f"{name}.discrimination.1_{ratio}.pick"] = pick_rate(tst[name][1][:, : 1 + ratio])
    decided["vote"] = votes_test >= 2
    vote_groups = np.asarray(votes_test, dtype=float).reshape(-1, 1 + ratio)
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


def fidelity(
    dataset: Dataset,
    tables: CatalogTables,
    bank: ReasonBank,
    settings: BundleSettings,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[dict[str, float], dict]:
    """Train on the training part of ``dataset`` and evaluate on its held-out part.

    Returns:
        The flat metrics and facts about the run (sizes, training agreement).
    """
    if settings.negatives < max(RATIOS):
        raise ValueError(f"fidelity needs negatives >= {max(RATIOS)} (got {settings.negatives})")
    report = progress or (lambda _p, _d, _t: None)
    bundle, validation = train_bundle(dataset, tables, bank, settings, report)
    report("scoring the test part", 0, 1)
    view = split_view(dataset, tables, bank, bundle.stat_model, settings)
    rated = rated_matrix(dataset, view.population.users)
    rng = RandomTree(settings.seed).generator(Stream.TEST_NEGATIVES)
    test = labelled_pairs(view, rated, max(RATIOS), settings.like_threshold, rng)
    metrics = evaluate(validation, test, bundle)
    report("scoring the test part", 1, 1)
    facts = {
        "dataset": dataset.name,
        "users": len(view.population.users),
        "test_ratings": len(test.agents),
        "test_like_share": float(test.liked.mean()) if len(test.liked) else float("nan"),
        "validation_ratings": len(validation.agents),
        **bundle.facts,
    }
    return metrics, facts
