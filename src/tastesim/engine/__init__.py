"""Execution engines: where a population's shards live.

``local`` holds the shards in this process (:class:`~tastesim.world.shards.InProcessShards`); ``ray`` makes
each shard a Ray actor (:mod:`tastesim.engine.ray`). Both speak :class:`~tastesim.world.shards.Shards`, so
the model's driver runs the same step story on either, and a run gives the same results on both and with
any number of workers.
"""

from __future__ import annotations

from collections.abc import Callable

from tastesim.agents.drift import item_vectors
from tastesim.scenario import ExecutionConfig, Scenario
from tastesim.world.build import Parts, user_decider
from tastesim.world.drift_metrics import Groups
from tastesim.world.shard import PopulationShard, ShardPlan, ShardWorld
from tastesim.world.shards import InProcessShards, Shards
from tastesim.world.shocks import ShockSchedule

__all__ = ["ShardLost", "build_shards", "make_shards", "shard_world"]


class ShardLost(RuntimeError):
    """A population shard's worker died or could not be reached; ``str()`` says which and what happened."""


def shard_world(
    scenario: Scenario,
    parts: Parts,
    groups: Groups,
    shocks: ShockSchedule | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ShardWorld:
    """What every shard of the scenario's population shares (the decision model is built, or trained and
    cached, here: once per real user)."""
    population = parts.population
    return ShardWorld(
        catalog=parts.catalog,
        item_vectors=item_vectors(parts.catalog.tables, parts.catalog.bank),
        user_memory=parts.user_memory,
        user_decider=user_decider(scenario, parts, progress),
        user_items=population.train > 0,
        holdout_ptr=population.holdout_ptr,
        holdout_items=population.holdout_items,
        drift=scenario.drift,
        group_names=groups.names,
        perturbations=shocks.perturbations() if shocks is not None else (),
        seed=scenario.seed,
    )


def build_shards(
    scenario: Scenario,
    parts: Parts,
    groups: Groups,
    shocks: ShockSchedule | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Shards:
    """The population of ``parts`` split into ``scenario.execution.workers`` shards on its engine."""
    world = shard_world(scenario, parts, groups, shocks, progress)
    plans = ShardPlan.split(parts.population.user_rows, groups.codes, scenario.execution.workers)
    return make_shards(scenario.execution, world, plans)


def make_shards(execution: ExecutionConfig, world: ShardWorld, plans: list[ShardPlan]) -> Shards:
    """The shards of ``plans`` on the engine ``execution`` names.

    Raises:
        ShardLost: Ray could not start the shards' actors.
    """
    if execution.engine == "local":
        return InProcessShards([PopulationShard.build(world, plan) for plan in plans])
    from tastesim.engine.ray import RayShards  # ray is imported only when asked for

    return RayShards(world, plans, address=execution.address)
