"""Shocks: launches, trends and switches on the recommender side; joins and perturbations on the population."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from tastesim.agents.drift import InterestState, item_vectors
from tastesim.recommenders import SlateRequest
from tastesim.recommenders.baselines import PopularityRecommender, RandomRecommender
from tastesim.scenario import JoinShock, LaunchShock, PerturbShock, Scenario, SwitchShock, TrendShock
from tastesim.scoring.deciders import LogicalDecider
from tastesim.scoring.logical import LogicalRule
from tastesim.world.build import build_parts, load_scenario_dataset, profiles_for
from tastesim.world.drift_metrics import segment_labels
from tastesim.world.model import TasteModel
from tastesim.world.shocks import ShockedRecommender, ShockError, ShockSchedule, shocked_world

ITEMS = ["i0", "i1", "i2", "i3", "i4"]
PRIMARY = np.array([0, 0, 1, 1, 2])
CATEGORIES = ["A", "B", "C"]
# Popularity order: i0 > i1 > i2 > i3 > i4.
TRAIN = sp.csr_matrix(np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]]))


def _request(step: int, n: int = 2, k: int = 2, blocked: np.ndarray | None = None) -> SlateRequest:
    blocked = np.zeros((n, len(ITEMS)), dtype=bool) if blocked is None else blocked
    return SlateRequest(np.arange(n), sp.csr_matrix((n, len(ITEMS))), blocked, k, step, np.random.default_rng(step))


def _shocked(*shocks) -> ShockedRecommender:
    rec = ShockedRecommender(
        PopularityRecommender(),
        list(shocks),
        item_ids=ITEMS,
        primary=PRIMARY,
        categories=CATEGORIES,
        make=lambda name: RandomRecommender(),
    )
    rec.fit(TRAIN, np.random.default_rng(0))
    return rec


def test_launch_hides_items_until_its_step() -> None:
    rec = _shocked(LaunchShock(kind="launch", step=3, category="A"))
    assert rec.recommend(_request(2)).tolist() == [[2, 3], [2, 3]]
    assert rec.recommend(_request(3)).tolist() == [[0, 1], [0, 1]]
    items = _shocked(LaunchShock(kind="launch", step=2, items=["i0"]))
    assert items.recommend(_request(1))[0].tolist() == [1, 2]


def test_trend_takes_the_last_slots_between_its_steps() -> None:
    rec = _shocked(TrendShock(kind="trend", step=2, until=3, category="C", slots=1))
    assert rec.recommend(_request(1)).tolist() == [[0, 1], [0, 1]]
    assert rec.recommend(_request(2)).tolist() == [[0, 4], [0, 4]]
    assert rec.recommend(_request(4)).tolist() == [[0, 1], [0, 1]]
    blocked = np.zeros((2, 5), dtype=bool)
    blocked[1, 4] = True  # a trending item an agent may not see is not forced on it
    assert rec.recommend(_request(3, blocked=blocked)).tolist() == [[0, 4], [0, 1]]


def test_switch_replaces_the_recommender_from_its_step() -> None:
    rec = _shocked(SwitchShock(kind="switch", step=2, recommender="random"))
    assert isinstance(rec.current(1), PopularityRecommender)
    assert isinstance(rec.current(2), RandomRecommender)
    assert rec.name == "popularity"
    slates = rec.recommend(_request(5, n=50, k=2))
    assert len({tuple(s) for s in slates.tolist()}) > 1  # random slates differ between agents


def test_unknown_targets_are_clear_errors() -> None:
    with pytest.raises(ShockError, match="unknown category 'Z'"):
        _shocked(LaunchShock(kind="launch", step=1, category="Z"))
    with pytest.raises(ShockError, match="unknown item"):
        _shocked(TrendShock(kind="trend", step=1, items=["nope"]))
    with pytest.raises(ShockError, match=r"not in segments\.by"):
        ShockSchedule(
            [JoinShock(kind="join", step=2, segment={"zip": "1"})],
            {"gender": np.array(["F"])},
            np.eye(5),
            PRIMARY,
            CATEGORIES,
        )
    with pytest.raises(ValueError, match="exactly one of category or items"):
        LaunchShock(kind="launch", step=1)


def test_join_and_perturb() -> None:
    labels = {"gender": np.array(["F", "M", "F"], dtype=object)}
    vectors = np.eye(5, dtype=np.float32)
    schedule = ShockSchedule(
        [
            JoinShock(kind="join", step=3, segment={"gender": "F"}),
            PerturbShock(kind="perturb", step=2, segment={"gender": "M"}, toward="B", strength=1.0),
        ],
        labels,
        vectors,
        PRIMARY,
        CATEGORIES,
    )
    assert schedule.present(np.arange(3), 2).tolist() == [1]
    assert schedule.present(np.arange(3), 3).tolist() == [0, 1, 2]
    mass = np.tile(np.array([2.0, 0, 0, 0, 0], dtype=np.float32), (3, 1))
    cats = np.tile(np.array([1.0, 0, 0], dtype=np.float32), (3, 1))
    state = InterestState(mass.copy(), mass / 2, cats.copy(), cats.copy(), np.zeros_like(cats))
    schedule.perturb(1, state)
    np.testing.assert_array_equal(state.mass, mass)
    schedule.perturb(2, state)
    # Strength 1: agent 1 now points at the unit mean of category B's items (i2, i3), keeping its norm 2.
    np.testing.assert_allclose(state.mass[1], [0, 0, np.sqrt(2), np.sqrt(2), 0], rtol=1e-6)
    np.testing.assert_allclose(state.categories[1], [0, 1, 0])
    np.testing.assert_array_equal(state.mass[[0, 2]], mass[[0, 2]])


def test_a_shock_changes_exposure_at_its_step_in_the_model(slice_dir: Path, tmp_path: Path) -> None:
    scenario = Scenario.model_validate(
        {
            "seed": 5,
            "dataset": {"path": str(slice_dir), "name": "ml-100k-slice"},
            "analyser": {"embedder": "hashing"},
            "recommender": {"name": "random"},
            "cache_dir": str(tmp_path),
            "shocks": [
                {"kind": "launch", "step": 3, "category": "Drama"},
                {"kind": "trend", "step": 2, "category": "Horror", "slots": 3},
            ],
        }
    )
    dataset = load_scenario_dataset(scenario)
    parts = build_parts(scenario, dataset, profiles_for(dataset, scenario))
    tables = parts.catalog.tables
    labels = segment_labels(parts.population, ("gender",))
    recommender, shocks = shocked_world(
        scenario,
        parts.catalog.item_ids,
        tables,
        item_vectors(tables, parts.catalog.bank),
        labels,
        users=parts.population.users,
    )
    model = TasteModel(
        parts.catalog,
        parts.population,
        parts.memory,
        recommender,
        LogicalDecider(LogicalRule(0.8, 0.08, 0.5), tables, parts.catalog.bank),
        seed=5,
        shocks=shocks,
    )
    index = {item: i for i, item in enumerate(parts.catalog.item_ids)}
    share = {}
    for _ in range(3):
        model.step()
        shown = np.array([index[i] for i in model.last_interactions["item"]])
        share[model.steps] = {
            c: float((tables.primary[shown] == tables.categories.index(c)).mean()) for c in ("Drama", "Horror")
        }
    assert share[1]["Drama"] == share[2]["Drama"] == 0.0 < share[3]["Drama"]
    assert share[2]["Horror"] >= 0.3 > share[1]["Horror"]
