"""Assemble a run's parts from a scenario: dataset, item profiles, catalog tables, population."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tastesim.agents.population import Population, build_population, seed_memory
from tastesim.analysis.cache import cached_profiles
from tastesim.analysis.keyphrase import KeyphraseAnalyser
from tastesim.catalog import Catalog
from tastesim.catalog.profile import ItemProfile, read_profiles
from tastesim.catalog.tables import CatalogTables
from tastesim.data import Dataset, load_dataset, training_view
from tastesim.data.dataset import DataFormatError
from tastesim.embedding import cached_embeddings, make_embedder
from tastesim.memory.store import StoreSpec
from tastesim.memory.working import WorkingMemory
from tastesim.paths import default_cache_dir
from tastesim.rng import RandomTree, Stream
from tastesim.scenario import Scenario
from tastesim.scoring.decider import Decider

__all__ = ["Parts", "build_parts", "load_scenario_dataset", "profiles_for", "scenario_decider", "store_spec"]


@dataclass(frozen=True)
class Parts:
    """What a :class:`~tastesim.world.model.TasteModel` is made from."""

    dataset: Dataset
    profiles: list[ItemProfile]
    catalog: Catalog
    population: Population
    memory: WorkingMemory
    seeded_slots: np.ndarray


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
    memory, seeded = seed_memory(population, train_rows, tables, scenario.memory.capacity, pop_cfg.like_threshold)
    share = np.asarray((population.train > 0).sum(axis=0)).ravel() / max(population.train.shape[0], 1)
    self_information = -np.log2(np.maximum(share, 1.0 / max(population.train.shape[0], 1)))
    catalog = Catalog(list(dataset.items["item"]), tables, bank, self_information)
    return Parts(dataset, profiles, catalog, population, memory, seeded)


def store_spec(scenario: Scenario, out: Path) -> StoreSpec:
    """Where the long-term memory of the run in ``out`` lives (``spec.open()`` reads it)."""
    memory = scenario.memory
    return StoreSpec(
        None if memory.server else out / "memory", f"tastesim-{scenario.name}", memory.server, memory.shards
    )


def scenario_decider(
    scenario: Scenario, parts: Parts, progress: Callable[[str, int, int], None] | None = None
) -> Decider:
    """The scenario's decision model; learned models are trained once and cached under the cache dir."""
    from tastesim.scoring.factory import make_decider, scenario_bundle_settings  # torch: only when deciding

    settings = scenario_bundle_settings(scenario)
    return make_decider(
        scenario.decision,
        settings,
        dataset=parts.dataset,
        population=parts.population,
        tables=parts.catalog.tables,
        bank=parts.catalog.bank,
        cache_dir=_cache_dir(scenario),
        progress=progress,
    )
