"""Execution engines: where a population's shards live.

``local`` holds the shards in this process (:class:`~tastesim.world.shards.InProcessShards`); ``ray`` makes
each shard a Ray actor (:mod:`tastesim.engine.ray`). Both speak :class:`~tastesim.world.shards.Shards`, so
the model's driver runs the same step story on either, and a run gives the same results on both and with
any number of workers.
"""

from __future__ import annotations

from tastesim.scenario import ExecutionConfig
from tastesim.world.shard import PopulationShard, ShardPlan, ShardWorld
from tastesim.world.shards import InProcessShards, Shards

__all__ = ["ShardLost", "make_shards"]


class ShardLost(RuntimeError):
    """A population shard's worker died or could not be reached; ``str()`` says which and what happened."""


def make_shards(execution: ExecutionConfig, world: ShardWorld, plans: list[ShardPlan]) -> Shards:
    """The shards of ``plans`` on the engine ``execution`` names.

    Raises:
        ShardLost: Ray could not start the shards' actors.
    """
    if execution.engine == "local":
        return InProcessShards([PopulationShard.build(world, plan) for plan in plans])
    from tastesim.engine.ray import RayShards  # ray is imported only when asked for

    return RayShards(world, plans, address=execution.address)
