"""Assemble a run's parts from a scenario: dataset, item profiles, catalog tables, population."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tastesim.agents.population import Population, build_population, seed_user_memory
from tastesim.analysis.cache import cached_profiles
from tastesim.analysis.keyphrase import KeyphraseAnalyser
from tastesim.catalog import Catalog
from tastesim.catalog.profile import ItemProfile, read_profiles
from tastesim.catalog.tables import CatalogTables
from tastesim.data import Dataset, load_dataset, training_view
from tastesim.data.dataset import DataFormatError
from tastesim.embedding import cached_embeddings, make_embedder
from tastesim.memory.seed import SeedSpec
from tastesim.memory.store import StoreSpec
from tastesim.memory.working import WorkingMemory
from tastesim.paths import default_cache_dir
from tastesim.rng import RandomTree, Stream
from tastesim.scenario import Scenario
from tastesim.scoring.decider import Decider

__all__ = [
    "Parts",
    "build_parts",
    "load_scenario_dataset",
    "profiles_for",
    "scenario_decider",
    "store_spec",
    "user_decider",
]


@dataclass(frozen=True)
class Parts:
    """What a :class:`~tastesim.world.model.TasteModel` is made from."""

    dataset: Dataset
    profiles: list[ItemProfile]
    catalog: Catalog
    population: Population
    memory: WorkingMemory  # each agent's seeded working memory
    user_memory: WorkingMemory  # each distinct real user's (a row of ``population.train``)


def load_scenario_dataset(scenario: Scenario) -> Dataset:
    """The scenario's dataset."""
    cfg = scenario.dataset
    return load_dataset(cfg.name, cfg.path, cfg.format)


def profiles_for(dataset: Dataset, scenario: Scenario, profiles_path: Path | None = None) -> list[ItemProfile]:
    """Item profiles in item order: from a file when given, else from the scenario's (cached) analyser, which
    sees the dataset's training view (reviews of the training part only)."""
    dataset = training_view(dataset, scenario.population.train_fraction)
    path = profiles_path or scenario.analyser.profiles
    if path is not None:
        by_item = {p.item: p for p in read_profiles(path)}
        missing = [i for i in dataset.items["item"] if i not in by_item]
        if missing:
            raise DataFormatError(path, f"no profile for {len(missing)} item(s), e.g. {missing[:3]}")
        return [by_item[i] for i in dataset.items["item"]]

    def offline(catalog: Dataset) -> list[ItemProfile]:
        analyser = KeyphraseAnalyser(make_embedder(scenario.analyser.embedder))
        return cached_profiles(catalog, analyser.cache_tag, analyser.analyse, _cache_dir(scenario))[0]

    if scenario.analyser.kind == "keyphrase":
        return offline(dataset)
    from tastesim.analysis.llm_analyser import analyse_with_config  # LLM replies cached in SQLite

    return analyse_with_config(dataset, scenario.analyser, _cache_dir(scenario), offline)[0]


def _cache_dir(scenario: Scenario) -> Path:
    return scenario.cache_dir or default_cache_dir()


def build_parts(scenario: Scenario, dataset: Dataset, profiles: list[ItemProfile]) -> Parts:
    """Catalog tables, population and seeded memory for ``scenario``."""
    embedder = make_embedder(scenario.analyser.embedder)
    tables, bank = CatalogTables.build(
        profiles, lambda texts: cached_embeddings(texts, embedder.name, embedder.embed, _cache_dir(scenario))
    )
    pop_cfg = scenario.population
    population, train_rows = build_population(
        dataset, pop_cfg.users, pop_cfg.train_fraction, RandomTree(scenario.seed).generator(Stream.POPULATION)
    )
    user_memory = seed_user_memory(population, train_rows, tables, scenario.memory.capacity, pop_cfg.like_threshold)
    memory = WorkingMemory(population.n_agents, user_memory.capacity)
    memory.copy_rows(np.arange(population.n_agents), user_memory, population.user_rows)
    share = np.asarray((population.train > 0).sum(axis=0)).ravel() / max(population.train.shape[0], 1)
    self_information = -np.log2(np.maximum(share, 1.0 / max(population.train.shape[0], 1)))
    catalog = Catalog(list(dataset.items["item"]), tables, bank, self_information)
    return Parts(dataset, profiles, catalog, population, memory, user_memory)


def store_spec(scenario: Scenario, out: Path) -> StoreSpec:
    """Where the long-term memory of the run in ``out`` lives; ``spec.open()`` reads it, ``spec.open().locate(
    agent, reason, polarity)`` says which record holds a memory (see ``tastesim.memory.view``).

    The run store has ``memory.shards`` shards, or one per population shard when ``execution.workers`` > 1
    (each shard writes its own); once the run has written its index (``memory-index/``), the spec names the
    seed store its seeded memories are in.
    """
    memory, workers = scenario.memory, scenario.execution.workers
    index = out / "memory-index"
    seed_file = index / "seed.json"
    seed = SeedSpec.from_json(seed_file.read_text(encoding="utf-8")) if seed_file.exists() else None
    return StoreSpec(
        None if memory.server else out / "memory",
        f"tastesim-{scenario.name}",
        memory.server,
        workers if workers > 1 else memory.shards,
        seed,
        index if index.is_dir() else None,
    )


def scenario_decider(
    scenario: Scenario, parts: Parts, progress: Callable[[str, int, int], None] | None = None
) -> Decider:
    """The scenario's decision model for every agent; learned models are trained once and cached under the
    cache dir."""
    return user_decider(scenario, parts, progress).for_agents(parts.population.user_rows)


def user_decider(scenario: Scenario, parts: Parts, progress: Callable[[str, int, int], None] | None = None) -> Decider:
    """The scenario's decision model with one row per distinct real user (``for_agents(user_rows)`` gives the
    agents'): its per-user context is computed once per user, however many agents are resampled from it."""
    from tastesim.scoring.factory import make_decider, scenario_bundle_settings  # torch: only when deciding

    pop = parts.population
    one_each = replace(pop, users=pop.user_ids, user_rows=np.arange(len(pop.user_ids), dtype=np.int64))
    return make_decider(
        scenario.decision,
        scenario_bundle_settings(scenario),
        dataset=parts.dataset,
        population=one_each,
        tables=parts.catalog.tables,
        bank=parts.catalog.bank,
        cache_dir=_cache_dir(scenario),
        progress=progress,
    )
