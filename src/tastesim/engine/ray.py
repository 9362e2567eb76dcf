"""Population shards as Ray actors: the ``ray`` engine.

Each shard of the population (:class:`~tastesim.world.shard.PopulationShard`: its agents' working memory,
interest state, consumed items, decision model and the writers of its part of the long-term store) lives in
one actor, placed with Ray's ``SPREAD`` strategy over the cluster's nodes. What all shards share (the
catalog, the real users' data and seeded memories, the per-user decision model) is put in Ray's object store
once. The driver calls every actor in parallel each step and merges their answers as the in-process shards
do, so results do not depend on the engine or the worker count.

A worker that dies (its process killed, its node lost) is noticed at the next call; the run then stops its
other shards' writers and raises :class:`~tastesim.engine.ShardLost`, and the run folder resumes from its last
checkpoint. Shards write their checkpoint files, embedded store parts and strength logs into the run folder:
on a cluster of several machines that folder must be on storage every node sees (or set ``memory.server``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import ray
import scipy.sparse as sp

from tastesim.engine import ShardLost
from tastesim.memory.protocol import WriterStats
from tastesim.memory.store import StoreSpec
from tastesim.world.shard import PopulationShard, ShardOutcome, ShardPlan, ShardWorld
from tastesim.world.shards import merge_histories, merge_outcomes, route

__all__ = ["PopulationShardActor", "RayShards"]

_START_TIMEOUT_S = 600.0  # actors that cannot be placed (too few CPUs in the cluster) fail after this


class PopulationShardActor:
    """A Ray actor holding one :class:`PopulationShard`; ``call`` runs one of its methods."""

    def __init__(self, world: ShardWorld, plan: ShardPlan) -> None:
        self.shard = PopulationShard.build(world, plan)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``shard.method(*args, **kwargs)``."""
        return getattr(self.shard, method)(*args, **kwargs)

    def where(self) -> tuple[str, int]:
        """``(node id, process id)`` of this actor."""
        return ray.get_runtime_context().get_node_id(), os.getpid()


class RayShards:
    """The :class:`~tastesim.world.shards.Shards` of a population, one Ray actor each.

    Args:
        world: What every shard shares (sent once through the object store).
        plans: One plan per shard.
        address: An existing cluster's address; ``None`` starts a local Ray (or uses the one this process
            already started), with at least as many CPUs as shards.
    """

    def __init__(self, world: ShardWorld, plans: list[ShardPlan], *, address: str | None = None) -> None:
        self._owns_ray = False
        if not ray.is_initialized():
            common = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
            if address:
                ray.init(address=address, **common)
            else:
                ray.init(num_cpus=max(len(plans), os.cpu_count() or 1), **common)
            self._owns_ray = True
        self.count = len(plans)
        self.n_items = world.user_items.shape[1]
        self.address = address
        actor = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(PopulationShardActor)
        shared = ray.put(world)
        self.actors = [actor.options(scheduling_strategy="SPREAD").remote(shared, plan) for plan in plans]
        self.places: list[tuple[str, int]] = []
        self.places = self._all("starting", lambda k, a: a.where.remote(), timeout=_START_TIMEOUT_S)

    # -- calling the actors ----------------------------------------------------------------------------
    def _all(self, what: str, call: Any, timeout: float | None = None) -> list[Any]:
        """``call(k, actor)`` on every actor, in parallel; the results in shard order.

        Raises:
            ShardLost: An actor died, or did not answer within ``timeout``.
        """
        refs = [call(k, a) for k, a in enumerate(self.actors)]
        results = []
        for k, ref in enumerate(refs):
            try:
                results.append(ray.get(ref, timeout=timeout))
            except ray.exceptions.RayTaskError as err:  # the shard's own failure (e.g. its store writer's)
                cause = getattr(err, "cause", None)
                self._stop_all()
                if isinstance(cause, Exception):
                    raise cause from None
                raise
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as err:
                self._stop_all()
                raise ShardLost(self._lost(k, what, err)) from err
        return results

    def _lost(self, k: int, what: str, err: BaseException) -> str:
        where = f" (node {self.places[k][0][:12]}, pid {self.places[k][1]})" if k < len(self.places) else ""
        if isinstance(err, ray.exceptions.GetTimeoutError):
            happened = "did not answer in time: does the cluster have a free CPU for every shard?"
        else:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            happened = f"its worker died ({type(err).__name__}: {first[:300]})"
        return f"population shard {k} of {self.count} (a Ray actor{where}), {what}: {happened}"

    def _each(self, method: str, args_of: Any, what: str) -> list[Any]:
        """Shard method ``method`` on every actor, with the arguments ``args_of(k)`` for shard ``k``."""
        return self._all(what, lambda k, a: a.call.remote(method, *args_of(k)))

    def _stop_all(self) -> None:
        """Stop every live shard's writers (a failed run) and release the actors."""
        refs = [a.call.remote("abort") for a in self.actors]
        for ref in refs:
            with contextlib.suppress(Exception):  # a dead actor's writers exit by themselves with their parent
                ray.get(ref, timeout=30)
        self.shutdown()

    # -- the Shards interface --------------------------------------------------------------------------
    def histories(self, agents: np.ndarray) -> sp.csr_matrix:
        """See :class:`~tastesim.world.shards.Shards`."""
        positions = route(agents, self.count)
        parts = self._each("histories", lambda k: (agents[positions[k]],), "reading consumed items")
        return merge_histories(parts, positions, self.n_items)

    def respond(self, step: int, agents: np.ndarray, slates: np.ndarray) -> ShardOutcome:
        """See :class:`~tastesim.world.shards.Shards`."""
        positions = route(agents, self.count)
        parts = self._each(
            "respond", lambda k: (step, agents[positions[k]], slates[positions[k]]), f"stepping step {step}"
        )
        return merge_outcomes(parts, positions, slates.shape)

    def open_store(self, spec: StoreSpec, resume: int | None) -> None:
        """See :class:`~tastesim.world.shards.Shards`: each actor writes its own store shard."""
        part = (lambda k: None) if self.count == 1 else (lambda k: k)
        self._all("opening its store", lambda k, a: a.call.remote("open_store", spec, part=part(k), resume=resume))

    def sync(self, step: int) -> WriterStats:
        """See :class:`~tastesim.world.shards.Shards`."""
        return WriterStats.combined(self._each("sync", lambda k: (step,), "flushing its store"))

    def close(self, step: int) -> WriterStats:
        """See :class:`~tastesim.world.shards.Shards`."""
        return WriterStats.combined(self._each("close", lambda k: (step,), "closing its store"))

    def abort(self) -> None:
        """See :class:`~tastesim.world.shards.Shards`."""
        if self.actors:
            self._stop_all()

    def save(self, folder: Path, step: int) -> None:
        """See :class:`~tastesim.world.shards.Shards`."""
        self._each("save", lambda k: (folder, step), "writing its checkpoint")

    def load(self, folder: Path, step: int) -> None:
        """See :class:`~tastesim.world.shards.Shards`."""
        self._each("load", lambda k: (folder, step), "reading its checkpoint")

    def prune(self, folder: Path, keep: int) -> None:
        """See :class:`~tastesim.world.shards.Shards`."""
        self._each("prune", lambda k: (folder, keep), "deleting old checkpoints")

    def state(self) -> list[dict[str, np.ndarray]]:
        """See :class:`~tastesim.world.shards.Shards`."""
        return self._each("state", lambda k: (), "reading its state")

    def restore(self, states: list[dict[str, np.ndarray]]) -> None:
        """See :class:`~tastesim.world.shards.Shards`."""
        self._each("restore", lambda k: (states[k],), "restoring its state")

    def seeded(self) -> int:
        """See :class:`~tastesim.world.shards.Shards`."""
        return sum(self._each("seeded", lambda k: (), "counting its memories"))

    def usage(self) -> list[dict[str, float]]:
        """See :class:`~tastesim.world.shards.Shards`: one entry per actor, with its node."""
        usage = self._each("usage", lambda k: (), "reporting its usage")
        return [{**u, "node": place[0]} for u, place in zip(usage, self.places, strict=True)]

    def shutdown(self) -> None:
        """Kill the actors (their writers exit with them) and stop the Ray this object started."""
        for actor in self.actors:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(actor)
        self.actors = []
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
            self._owns_ray = False
