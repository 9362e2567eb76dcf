"""The closed loop in the model: each step's feedback reaches the recommender in one call, exactly as decided,
and a recommender refitted every K steps on the simulated log shows other slates than a static one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.helpers import serve_in_thread
from tests.recommender_service import LearningService

from tastesim.recommenders import recommender_for
from tastesim.scenario import RecommenderConfig, Scenario
from tastesim.scoring.deciders import LogicalDecider
from tastesim.scoring.logical import LogicalRule
from tastesim.world.build import Parts, build_parts, load_scenario_dataset, profiles_for
from tastesim.world.model import TasteModel


@pytest.fixture(scope="module")
def parts(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Parts:
    scenario = Scenario.model_validate(
        {
            "dataset": {"path": str(slice_dir), "name": "ml-100k-slice"},
            "analyser": {"embedder": "hashing"},
            "cache_dir": str(tmp_path_factory.mktemp("cache")),
        }
    )
    dataset = load_scenario_dataset(scenario)
    return build_parts(scenario, dataset, profiles_for(dataset, scenario))


def _model(parts: Parts, config: RecommenderConfig) -> TasteModel:
    tables, bank = parts.catalog.tables, parts.catalog.bank
    memory = type(parts.memory).from_state(parts.memory.state())
    vectors = np.zeros((len(parts.catalog.item_ids), 4), dtype=np.float32)
    recommender = recommender_for(config, vectors, parts.catalog.item_ids, parts.population.users)
    decider = LogicalDecider(LogicalRule(click_threshold=0.2, click_temperature=0.1, tie_like=0.6), tables, bank)
    return TasteModel(
        parts.catalog, parts.population, memory, recommender, decider, seed=4, retrain_every=config.retrain_every
    )


@pytest.mark.slow
def test_the_service_receives_exactly_each_steps_decisions(parts: Parts) -> None:
    with serve_in_thread(LearningService(parts.catalog.item_ids)) as service:
        model = _model(parts, RecommenderConfig(name="http", url=service.url))  # type: ignore[attr-defined]
        for _ in range(3):
            model.step()
            rows = model.last_interactions
            feedback = service.calls("/feedback")[-1]  # type: ignore[attr-defined]
            assert feedback["step"] == model.steps
            sent = pd.DataFrame(
                [
                    {"agent": int(agent), "item": item, "click": c, "like": lk, "dislike": d}
                    for agent, slate, click, like, dislike in zip(
                        feedback["agents"], feedback["slates"], feedback["click"], feedback["like"],
                        feedback["dislike"], strict=True,
                    )
                    for item, c, lk, d in zip(slate, click, like, dislike, strict=True)
                ]
            )  # fmt: skip
            expected = rows[["agent", "item", "click", "like", "dislike"]].reset_index(drop=True)
            pd.testing.assert_frame_equal(sent, expected, check_dtype=False)
            assert rows["click"].any()
        assert len(service.calls("/recommend")) == len(service.calls("/feedback")) == 3  # type: ignore[attr-defined]
        # The service learned from the clicks it received: its ranking follows them.
        clicked = service.clicks.most_common(1)[0][0]  # type: ignore[attr-defined]
        assert service.ranking()[0] == clicked  # type: ignore[attr-defined]


def test_a_retrained_recommender_shows_other_slates_than_a_static_one(parts: Parts) -> None:
    runs = {}
    for label, retrain in (("static", None), ("retrained", 2)):
        model = _model(parts, RecommenderConfig(name="popularity", retrain_every=retrain))
        shown = []
        for _ in range(6):
            model.step()
            shown.append(model.last_interactions[["step", "agent", "item"]])
        runs[label] = pd.concat(shown, ignore_index=True)
    static, retrained = runs["static"], runs["retrained"]
    # Identical until the first refit takes effect (steps 1-2), different afterwards.
    early = static["step"] <= 2
    pd.testing.assert_frame_equal(static[early], retrained[retrained["step"] <= 2])
    assert not static[~early].reset_index(drop=True).equals(retrained[retrained["step"] > 2].reset_index(drop=True))


def test_the_feedback_log_is_checkpointed_and_a_restored_model_refits_identically(parts: Parts) -> None:
    config = RecommenderConfig(name="mf", factors=8, retrain_every=2)
    straight = _model(parts, config)
    for _ in range(5):
        straight.step()
    state = straight.state()
    restored = _model(parts, config)
    for _ in range(3):  # a run that went on a little, then is brought back to the checkpoint at step 5
        restored.step()
    restored.restore({k: np.copy(v) for k, v in state.items()})
    assert restored.steps == 5
    np.testing.assert_array_equal(restored.recommender._model.item_factors, straight.recommender._model.item_factors)
    straight.step()
    restored.step()
    pd.testing.assert_frame_equal(straight.last_interactions, restored.last_interactions)
