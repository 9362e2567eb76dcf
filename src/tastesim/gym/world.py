"""What every episode of an environment shares: the catalog, the users, their seeded memories and interest
state, and the decision model, built once from a scenario (and kept per process, keyed by the scenario)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import yaml

from tastesim.agents.drift import InterestState, initial_state, item_vectors
from tastesim.agents.population import Population
from tastesim.catalog import Catalog
from tastesim.memory.working import WorkingMemory
from tastesim.rng import RandomTree, Stream
from tastesim.scenario import DriftConfig, Scenario
from tastesim.scoring.decider import Decider
from tastesim.world.build import build_parts, load_scenario_dataset, profiles_for, scenario_decider

__all__ = ["AXES", "EnvWorld", "env_world"]

AXES = 16  # principal directions of the item vectors on which the interest centroid is observed


@dataclass(frozen=True)
class EnvWorld:
    """The shared, read-only part of an environment (one agent per real user)."""

    catalog: Catalog
    population: Population
    memory: WorkingMemory  # each user's seeded working memory (template rows)
    interest: InterestState  # each user's starting interest state (template rows)
    decider: Decider
    drift: DriftConfig
    item_vectors: np.ndarray  # (I, d) unit content vectors
    axes: np.ndarray  # (d, AXES) principal directions of the item vectors
    train_users: np.ndarray  # agent indices of the users policies are trained on
    test_users: np.ndarray  # agent indices held out from training

    @property
    def n_items(self) -> int:
        """Catalog size."""
        return len(self.catalog.item_ids)

    def users(self, which: str) -> np.ndarray:
        """Agent indices of ``train``, ``test`` or ``all`` users."""
        if which == "all":
            return np.arange(len(self.population.users))
        return self.train_users if which == "train" else self.test_users

    @staticmethod
    def build(scenario: Scenario, train_share: float) -> EnvWorld:
        """Load the scenario's data, profiles (cached), population and decision model (trained once, cached)."""
        dataset = load_scenario_dataset(scenario)
        one_per_user = scenario.model_copy(
            update={"population": scenario.population.model_copy(update={"users": None})}
        )
        parts = build_parts(one_per_user, dataset, profiles_for(dataset, one_per_user))
        tables, bank = parts.catalog.tables, parts.catalog.bank
        vectors = item_vectors(tables, bank)
        centred = vectors - vectors.mean(axis=0)
        axes = np.linalg.svd(centred, full_matrices=False)[2][:AXES].T.astype(np.float32)
        n = len(parts.population.users)
        order = RandomTree(scenario.seed).generator(Stream.ENVIRONMENT, key="split").permutation(n)
        cut = max(1, min(n - 1, round(n * train_share)))
        return EnvWorld(
            catalog=parts.catalog,
            population=parts.population,
            memory=parts.memory,
            interest=initial_state(parts.memory, tables, bank, scenario.drift),
            decider=scenario_decider(one_per_user, parts),
            drift=scenario.drift,
            item_vectors=vectors,
            axes=axes,
            train_users=np.sort(order[:cut]),
            test_users=np.sort(order[cut:]),
        )


@lru_cache(maxsize=4)
def _cached(scenario_yaml: str, train_share: float) -> EnvWorld:
    return EnvWorld.build(Scenario.model_validate(yaml.safe_load(scenario_yaml)), train_share)


def env_world(scenario: Scenario, train_share: float) -> EnvWorld:
    """The world of ``scenario``, built once per process (environments made again reuse it)."""
    return _cached(scenario.to_yaml(), train_share)
