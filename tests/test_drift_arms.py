"""Arms share one population and seed; the diversity re-ranker's MMR on hand-made vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from tastesim.recommenders import Recommender, SlateRequest
from tastesim.recommenders.rerank import DiversityReranker
from tastesim.runs.arms import arm_scenarios
from tastesim.scenario import Scenario
from tastesim.world.build import build_parts, load_scenario_dataset, profiles_for


def test_arms_share_identical_initial_populations(slice_dir: Path, tmp_path: Path) -> None:
    scenario = Scenario.model_validate(
        {
            "seed": 11,
            "population": {"users": 20},
            "dataset": {"path": str(slice_dir), "name": "ml-100k-slice"},
            "analyser": {"embedder": "hashing"},
            "cache_dir": str(tmp_path),
            "arms": [
                {"name": "pop", "recommender": {"name": "popularity"}},
                {"name": "div", "recommender": {"name": "diverse", "slate_size": 5}},
            ],
        }
    )
    arms = arm_scenarios(scenario)
    assert [name for name, _ in arms] == ["pop", "div"]
    dataset = load_scenario_dataset(scenario)
    profiles = profiles_for(dataset, scenario)
    built = [build_parts(arm, dataset, profiles) for _, arm in arms]
    first, second = built
    np.testing.assert_array_equal(first.population.users, second.population.users)
    np.testing.assert_array_equal(first.population.consumed, second.population.consumed)
    for key, value in first.memory.state().items():
        np.testing.assert_array_equal(value, second.memory.state()[key])
    for (_, arm), config in zip(arms, ("popularity", "diverse"), strict=True):
        assert arm.recommender.name == config and arm.seed == 11 and arm.arms == []
        assert arm.model_dump(exclude={"name", "recommender", "arms"}) == scenario.model_dump(
            exclude={"name", "recommender", "arms"}
        )


def test_arm_names_must_be_distinct() -> None:
    arm = {"name": "a", "recommender": {"name": "random"}}
    with pytest.raises(ValueError, match="arm names must be distinct"):
        Scenario.model_validate({"arms": [arm, arm]})


def test_mmr_prefers_a_different_item_over_a_near_duplicate() -> None:
    vectors = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    pool = np.array([[0, 1, 2]])
    relevance = np.array([[1.0, 0.9, 0.5]])
    assert DiversityReranker(vectors, diversity=0.0).rerank(pool, relevance, 3).tolist() == [[0, 1, 2]]
    # diversity 0.5: after item 0, item 1 scores 0.45 - 0.5 * 1 < item 2's 0.25 - 0.5 * 0.
    assert DiversityReranker(vectors, diversity=0.5).rerank(pool, relevance, 3).tolist() == [[0, 2, 1]]
    short = DiversityReranker(vectors).rerank(np.array([[2, -1, -1]]), np.array([[1.0, -np.inf, -np.inf]]), 2)
    assert short.tolist() == [[2, -1]]


def test_reranker_is_a_recommender_and_respects_blocked_items() -> None:
    rng = np.random.default_rng(0)
    train = sp.csr_matrix((rng.random((30, 12)) < 0.4).astype(np.float32))
    vectors = rng.normal(size=(12, 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rec = DiversityReranker(vectors, neighbours=5)
    assert isinstance(rec, Recommender)
    rec.fit(train, np.random.default_rng(0))
    blocked = train[:6].toarray() > 0
    request = SlateRequest(np.arange(6), train[:6], blocked, 4, 1, np.random.default_rng(1))
    slates = rec.recommend(request)
    assert slates.shape == (6, 4)
    for row, block in zip(slates, blocked, strict=True):
        shown = row[row >= 0]
        assert len(set(shown.tolist())) == shown.size and not block[shown].any()
    with pytest.raises(ValueError, match="diversity"):
        DiversityReranker(vectors, diversity=1.5)
