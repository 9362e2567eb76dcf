"""Populations kept per distinct real user, sparse consumed items, and the scenario's execution section."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import yaml

from tastesim.agents.consumed import ConsumedItems, HeldOutItems
from tastesim.agents.population import build_population, seed_memory, seed_user_memory, split_by_time
from tastesim.catalog.tables import CatalogTables
from tastesim.embedding import make_embedder
from tastesim.rng import RandomTree, Stream
from tastesim.scenario import Scenario, ScenarioError, load_scenario
from tastesim.world.build import profiles_for


def test_resampled_agents_share_their_users_rows(slice_dataset) -> None:
    population, _ = build_population(slice_dataset, 75, 0.8, RandomTree(3).generator(Stream.POPULATION))
    users = population.user_ids
    assert len(users) == 30 and population.n_agents == 75
    assert (users[population.user_rows] == population.users).all()
    # Consumed items, held-out items (in time order) and attributes are the source user's.
    inter = slice_dataset.interactions
    held = inter[~split_by_time(inter, 0.8).to_numpy()]
    for agent in (0, 31, 74):
        user = population.users[agent]
        expected = slice_dataset.item_index(held[held["user"] == user]["item"].tolist())
        assert population.holdout_of(agent).tolist() == expected.tolist()
        assert population.segments[agent] is population.user_segments[population.user_rows[agent]]
    dense = population.consumed
    assert dense.shape == (75, slice_dataset.n_items) and dense.dtype == bool
    assert (dense == population.consumed_rows().toarray()).all()
    assert (dense[40] == (population.train[population.user_rows[40]].toarray()[0] > 0)).all()


def test_agents_start_from_their_users_seeded_memory(slice_dataset, tmp_path: Path) -> None:
    population, train_rows = build_population(slice_dataset, 50, 0.8, RandomTree(3).generator(Stream.POPULATION))
    embedder = make_embedder("hashing")
    profiles = profiles_for(
        slice_dataset,
        Scenario.model_validate({"analyser": {"embedder": "hashing"}, "cache_dir": str(tmp_path)}),
    )
    tables, _ = CatalogTables.build(profiles, embedder.embed)
    per_user = seed_user_memory(population, train_rows, tables, 8, 3.0)
    memory, created = seed_memory(population, train_rows, tables, 8, 3.0)
    assert per_user.n_agents == 30 and memory.n_agents == 50
    assert (memory.reason == per_user.reason[population.user_rows]).all()
    assert (memory.strength == per_user.strength[population.user_rows]).all()
    assert len(created) == int((memory.reason >= 0).sum()) > 50


def test_consumed_items_grow_by_clicks_and_round_trip() -> None:
    users = sp.csr_matrix(np.array([[1, 0, 0, 1], [0, 1, 0, 0]], dtype=np.float32))
    consumed = ConsumedItems(users, np.array([0, 1, 0]))
    consumed.add(np.array([2, 2, 1]), np.array([2, 2, 3]))  # a repeated click counts once
    assert consumed.dense(np.array([2, 1, 0])).astype(int).tolist() == [[1, 0, 1, 1], [0, 1, 0, 1], [1, 0, 0, 1]]
    rows = consumed.rows(np.array([2]))
    assert rows.data.tolist() == [1.0, 1.0, 1.0] and rows.indices.tolist() == [0, 2, 3]
    again = ConsumedItems(users, np.array([0, 1, 0]))
    again.load(consumed.state())
    assert (again.dense(np.arange(3)) == consumed.dense(np.arange(3))).all()
    held = HeldOutItems(np.array([0, 2, 3]), np.array([3, 1, 0]), 4)
    assert held.hits(np.array([0, 0, 1, 1]), np.array([1, 2, 0, 3])) == 2


@pytest.mark.parametrize(
    ("execution", "message"),
    [
        ({"engine": "local", "address": "ray://head:10001"}, "address is a Ray cluster's"),
        ({"engine": "dask"}, "execution.engine"),
        ({"workers": 0}, "execution.workers"),
        ({"engine": "ray", "workers": 2, "extra": 1}, "execution.extra"),
    ],
)
def test_the_execution_section_is_validated(tmp_path: Path, execution: dict, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"execution": execution}), encoding="utf-8")
    with pytest.raises(ScenarioError, match=message):
        load_scenario(path)


def test_local_execution_is_the_default(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("steps: 3\n", encoding="utf-8")
    execution = load_scenario(path).execution
    assert (execution.engine, execution.workers, execution.address) == ("local", 1, None)
    path.write_text(yaml.safe_dump({"execution": {"engine": "ray", "workers": 4, "address": "auto"}}))
    assert load_scenario(path).execution.workers == 4
