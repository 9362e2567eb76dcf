"""The 2-of-3 vote and the learned ensemble on hand-made feature rows."""

from __future__ import annotations

import numpy as np

from tastesim.eval.metrics import auc
from tastesim.rng import RandomTree, Stream
from tastesim.scoring.ensemble import fit_learned, vote_score
from tastesim.scoring.features import FEATURES
from tastesim.scoring.heads import HeadTargets


def rows(*cases: dict[str, float]) -> np.ndarray:
    """Feature rows with the named columns set and every other column 0."""
    x = np.zeros((len(cases), len(FEATURES)), dtype=np.float32)
    for i, case in enumerate(cases):
        for name, value in case.items():
            x[i, FEATURES.index(name)] = value
    return x


def test_vote_counts_keyword_similarity_and_statistical_votes() -> None:
    x = rows(
        {"kw_pos": 2, "kw_neg": 1, "sim_pos": 0.9, "sim_neg": 0.2, "stat_like": 3.0},  # +1 +1 +1
        {"kw_pos": 2, "kw_neg": 1, "sim_pos": 0.1, "sim_neg": 0.2, "stat_like": 3.0},  # +1 -1 +1
        {"kw_pos": 0, "kw_neg": 1, "sim_pos": 0.1, "sim_neg": 0.2, "stat_like": 3.0},  # -1 -1 +1
        {"kw_pos": 1, "kw_neg": 1, "sim_pos": 0.5, "sim_neg": 0.5, "stat_like": 1.5},  # 0 0 0 (tie)
        {"kw_pos": 1, "kw_neg": 1, "sim_pos": 0.5, "sim_neg": 0.2, "stat_like": 1.0},  # 0 +1 -1
    )
    np.testing.assert_array_equal(vote_score(x, stat_threshold=1.5), [3, 1, -1, 0, 0])


def test_learned_ensemble_weights_the_informative_score() -> None:
    """Likes follow the statistical score, interactions the keyword count; noise columns carry nothing."""
    rng = np.random.default_rng(5)
    n = 4000
    x = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    stat, kw = x[:, FEATURES.index("stat_like")], x[:, FEATURES.index("kw_pos")]
    like = (rng.random(n) < 1 / (1 + np.exp(-3 * stat))).astype(np.float32)
    interact = (rng.random(n) < 1 / (1 + np.exp(-3 * kw))).astype(np.float32)
    train, test = slice(0, 3000), slice(3000, None)
    targets = HeadTargets(interact[train], like[train], np.ones(3000, dtype=bool))
    heads = fit_learned(x[train], targets, RandomTree(5).torch_generator(Stream.LEARNED))
    interact_logit, like_logit = heads.logits(x[test])
    assert auc(like_logit, like[test].astype(bool)) > 0.85
    assert auc(interact_logit, interact[test].astype(bool)) > 0.85
    weights = heads.net[0].weight.detach().numpy()
    assert np.argmax(np.abs(weights[1])) == FEATURES.index("stat_like")
    assert np.argmax(np.abs(weights[0])) == FEATURES.index("kw_pos")
    probability = 1 / (1 + np.exp(-like_logit))
    assert abs(probability.mean() - like[test].mean()) < 0.05
