"""One contract, every decision model (logical, vote, learned, distilled) on the same real users and slates.

Empty slots are never clicked; only clicked items are judged, each liked or disliked; the same keyed draws
give the same decisions; an agent decides the same in any batch (draws are keyed by agent, not position);
the click offset moves clicks; and a decider re-bound to copies of agents decides as it does for them.
"""

from __future__ import annotations

import numpy as np
import pytest

from tastesim.agents.population import build_population, seed_memory
from tastesim.analysis.keyphrase import KeyphraseAnalyser
from tastesim.catalog.tables import CatalogTables
from tastesim.data.dataset import Dataset
from tastesim.embedding import make_embedder
from tastesim.memory.working import WorkingMemory
from tastesim.rng import KeyedDraws, RandomTree, Stream
from tastesim.scenario import DecisionConfig
from tastesim.scoring.bundle import BundleSettings
from tastesim.scoring.decider import Decider
from tastesim.scoring.factory import make_decider
from tastesim.scoring.statistical import StatSettings

MODELS = ["logical", "vote", "learned", "distilled"]


@pytest.fixture(scope="module")
def world(ml100k, tmp_path_factory: pytest.TempPathFactory):
    """80 real ML-100K users, hashing-embedder profiles, seeded memories and every decider."""
    users = sorted(ml100k.interactions["user"].unique(), key=int)[:80]
    inter = ml100k.interactions[ml100k.interactions["user"].isin(users)].reset_index(drop=True)
    items = ml100k.items[ml100k.items["item"].isin(set(inter["item"]))].reset_index(drop=True)
    dataset = Dataset("ml-100k-80", inter, items)
    embedder = make_embedder("hashing")
    tables, bank = CatalogTables.build(KeyphraseAnalyser(embedder).analyse(dataset), embedder.embed)
    population, train_rows = build_population(dataset, None, 0.8, RandomTree(0).generator(Stream.POPULATION))
    memory, _ = seed_memory(population, train_rows, tables, 16, 3.0)
    settings = BundleSettings(seed=2, stat=StatSettings(dim=16, epochs=3))
    cache = tmp_path_factory.mktemp("models")
    deciders = {
        name: make_decider(
            DecisionConfig(model=name, click_threshold=0.3),
            settings,
            dataset=dataset,
            population=population,
            tables=tables,
            bank=bank,
            cache_dir=cache,
        )
        for name in MODELS
    }
    slates = np.random.default_rng(1).integers(0, len(tables.primary), size=(len(population.users), 8))
    slates[:, -2:] = -1
    return memory, deciders, slates


def _draws(agents: np.ndarray, step: int = 3):
    return KeyedDraws(99 + step).rows(agents)


@pytest.mark.parametrize("model", MODELS)
def test_decisions_are_well_formed(world, model: str) -> None:
    memory, deciders, slates = world
    agents = np.arange(len(slates))
    decisions, features = deciders[model].decide(memory, agents, slates, _draws(agents))
    assert isinstance(deciders[model], Decider)
    assert decisions.click.shape == features.kw_pos.shape == slates.shape
    assert not decisions.click[slates < 0].any()
    assert not (decisions.like & decisions.dislike).any()
    np.testing.assert_array_equal(decisions.like | decisions.dislike, decisions.click)
    assert 0 < decisions.click[slates >= 0].mean() < 1 and decisions.like.any() and decisions.dislike.any()


@pytest.mark.parametrize("model", MODELS)
def test_the_same_draws_give_the_same_decisions_and_others_differ(world, model: str) -> None:
    memory, deciders, slates = world
    agents = np.arange(len(slates))
    first, _ = deciders[model].decide(memory, agents, slates, _draws(agents))
    again, _ = deciders[model].decide(memory, agents, slates, _draws(agents))
    other, _ = deciders[model].decide(memory, agents, slates, _draws(agents, step=4))
    for name in ("click", "like", "dislike"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.click, other.click)


@pytest.mark.parametrize("model", MODELS)
def test_an_agent_decides_the_same_in_any_batch(world, model: str) -> None:
    memory, deciders, slates = world
    agents = np.arange(len(slates))
    whole, _ = deciders[model].decide(memory, agents, slates, _draws(agents))
    part = agents[5:17][::-1]  # another batch, another order
    some, _ = deciders[model].decide(memory, part, slates[part], _draws(part))
    np.testing.assert_array_equal(some.click, whole.click[part])
    np.testing.assert_array_equal(some.like, whole.like[part])


@pytest.mark.parametrize("model", MODELS)
def test_the_click_offset_moves_clicks(world, model: str) -> None:
    memory, deciders, slates = world
    agents = np.arange(len(slates))
    muted, _ = deciders[model].decide(memory, agents, slates, _draws(agents), np.full(slates.shape, -60.0))
    eager, _ = deciders[model].decide(memory, agents, slates, _draws(agents), np.full(slates.shape, 60.0))
    assert not muted.click.any()
    np.testing.assert_array_equal(eager.click, slates >= 0)


@pytest.mark.parametrize("model", MODELS)
def test_a_decider_rebound_to_copies_of_agents_decides_as_for_them(world, model: str) -> None:
    memory, deciders, slates = world
    chosen = np.array([7, 3, 7, 40])  # copies, one agent twice
    copies = WorkingMemory(len(chosen), memory.capacity)
    copies.copy_rows(np.arange(len(chosen)), memory, chosen)
    rows = np.arange(len(chosen))
    rebound, _ = deciders[model].for_agents(chosen).decide(copies, rows, slates[chosen], _draws(chosen))
    direct, _ = deciders[model].decide(memory, chosen, slates[chosen], _draws(chosen))
    np.testing.assert_array_equal(rebound.click, direct.click)
    np.testing.assert_array_equal(rebound.like, direct.like)
