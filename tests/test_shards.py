"""Population shards: any split of the population steps exactly as one shard does (in process, no store)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tastesim.agents.drift import item_vectors
from tastesim.engine import build_shards
from tastesim.scenario import Scenario
from tastesim.world.build import Parts, build_parts, load_scenario_dataset, profiles_for, scenario_decider
from tastesim.world.drift_metrics import DriftPartial, Groups, ShardDrift, fixed, partial_of_states, segment_labels
from tastesim.world.model import TasteModel
from tastesim.world.shard import ShardPlan
from tastesim.world.shards import InProcessShards, route
from tastesim.world.shocks import shocked_world


@pytest.fixture(scope="module")
def setup(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Scenario, Parts]:
    """45 agents resampled from the 30-user slice, logical decisions, drift with a perturbation and a join."""
    scenario = Scenario.model_validate(
        {
            "seed": 11,
            "dataset": {"path": str(slice_dir), "name": "ml-100k-slice"},
            "population": {"users": 45, "activity": 0.8},
            "analyser": {"embedder": "hashing"},
            "decision": {"model": "logical", "click_threshold": 0.3, "click_temperature": 0.1},
            "recommender": {"name": "itemknn"},
            "segments": {"by": ["gender", "age", "activity"]},
            "shocks": [
                {"kind": "perturb", "step": 2, "segment": {"gender": "F"}, "toward": "Comedy"},
                {"kind": "join", "step": 3, "segment": {"gender": "M"}},
            ],
            "cache_dir": str(tmp_path_factory.mktemp("cache")),
        }
    )
    dataset = load_scenario_dataset(scenario)
    return scenario, build_parts(scenario, dataset, profiles_for(dataset, scenario))


def _model(scenario: Scenario, parts: Parts, workers: int | None) -> TasteModel:
    """``workers`` in-process shards from the engine's builder, or (``None``) the model's own single shard."""
    labels = segment_labels(parts.population, tuple(scenario.segments.by))
    tables = parts.catalog.tables
    vectors = item_vectors(tables, parts.catalog.bank)
    recommender, shocks = shocked_world(
        scenario, parts.catalog.item_ids, tables, vectors, labels, users=parts.population.users
    )
    common = {"seed": scenario.seed, "activity": scenario.population.activity, "segments": labels, "shocks": shocks}
    if workers is None:
        memory = type(parts.memory).from_state(parts.memory.state())
        decider = scenario_decider(scenario, parts)
        return TasteModel(parts.catalog, parts.population, memory, recommender, decider, **common)
    split = scenario.model_copy(update={"execution": scenario.execution.model_copy(update={"workers": workers})})
    groups = Groups.from_labels(labels, parts.population.n_agents)
    shards = build_shards(split, parts, groups, shocks)
    assert isinstance(shards, InProcessShards) and shards.count == workers
    return TasteModel(parts.catalog, parts.population, None, recommender, None, shards=shards, **common)


def _run(model: TasteModel, steps: int) -> tuple[pd.DataFrame, pa.Table, pd.DataFrame]:
    tables = []
    for _ in range(steps):
        model.step()
        assert model.last_table is not None
        tables.append(model.last_table)
    return model.datacollector.get_model_vars_dataframe(), pa.concat_tables(tables), model.drift_tracker.frame()


def test_any_split_of_the_population_steps_the_same(setup: tuple[Scenario, Parts]) -> None:
    scenario, parts = setup
    metrics, interactions, drift = _run(_model(scenario, parts, None), 5)
    assert interactions["click"].to_numpy().any() and interactions["like"].to_numpy().any()
    assert (metrics["active_agents"] < 45).any()  # activity 0.8 and a segment joining at step 3
    assert drift["centroid_step"].max() > 0
    for workers in (1, 2, 3, 7):
        m, i, d = _run(_model(scenario, parts, workers), 5)
        pd.testing.assert_frame_equal(m, metrics, check_exact=True)
        assert i.equals(interactions), workers
        pd.testing.assert_frame_equal(d, drift, check_exact=True)


def test_a_restored_model_steps_on_as_the_original(setup: tuple[Scenario, Parts]) -> None:
    scenario, parts = setup
    straight = _model(scenario, parts, 3)
    _run(straight, 3)
    state = {k: np.copy(v) for k, v in straight.state().items()}
    restored = _model(scenario, parts, 3)
    _run(restored, 1)  # a model that went elsewhere is brought back to the state at step 3
    restored.restore(state)
    assert restored.steps == 3
    a, b = _run(straight, 2), _run(restored, 2)
    assert a[1].equals(b[1])
    pd.testing.assert_frame_equal(a[2], b[2], check_exact=True)


def test_route_puts_each_agent_on_its_shard() -> None:
    agents = np.array([0, 2, 3, 5, 6, 9])
    assert [a.tolist() for a in route(agents, 3)] == [[0, 2, 4, 5], [], [1, 3]]
    plans = ShardPlan.split(np.array([4, 4, 1, 0, 2]), np.zeros((5, 1), dtype=np.int32), 2)
    assert [p.agents.tolist() for p in plans] == [[0, 2, 4], [1, 3]]
    assert [p.user_rows.tolist() for p in plans] == [[4, 1, 2], [4, 0]]


def test_segment_sums_are_exact_and_add_up_over_shards() -> None:
    rng = np.random.default_rng(0)
    labels = {"gender": rng.choice(np.array(["F", "M"], dtype=object), 50)}
    groups = Groups.from_labels(labels, 50)
    values = fixed(rng.random((50, 3)))
    whole = groups.sums(groups.codes, values)
    assert whole[0].tolist() == values.sum(0).tolist()
    halves = [groups.sums(groups.codes[k::2], values[k::2]) for k in (0, 1)]
    assert (halves[0] + halves[1] == whole).all()
    assert fixed(np.array([np.nan, 0.5, -1.0])).tolist() == [0, 1 << 31, -(1 << 32)]


def test_incremental_drift_sums_match_a_full_recount(setup: tuple[Scenario, Parts]) -> None:
    """A shard recomputes only the agents that moved; its sums equal recomputing everyone (bar decay noise)."""
    scenario, parts = setup
    model = _model(scenario, parts, 1)
    _run(model, 3)
    shard = model.shards.shards[0]  # type: ignore[attr-defined]
    state = shard.interest
    fresh = ShardDrift(state, model.groups, model.groups.codes)
    assert (fresh.cat_sums == shard.drift.cat_sums).all()
    assert (fresh.narrowing_sums == shard.drift.narrowing_sums).all()
    np.testing.assert_allclose(fresh.shift_sums, shard.drift.shift_sums, rtol=1e-5, atol=1 << 12)
    partial = partial_of_states(model.groups, np.arange(45), np.zeros((45, 2), int), before=state, after=state,
                                vectors=model.item_vectors)  # fmt: skip
    assert isinstance(partial, DriftPartial) and (partial + partial).members.tolist() == (2 * partial.members).tolist()
