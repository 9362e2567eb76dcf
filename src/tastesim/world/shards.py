"""A population held as shards: the interface the model's driver speaks, and the in-process implementation.

The driver gives every call the acting agents in ascending order; a shard set routes each agent to its
shard (``agent % count``), calls every shard (each one also when none of its agents acts: its perturbations
and its share of the drift metrics are due every step) and puts the rows back in the driver's order. The
numbers shards return are per agent or exact integer sums, so the merged outcome does not depend on how many
shards there are. ``tastesim.engine.ray`` implements the same interface with one Ray actor per shard.
"""

from __future__ import annotations

from dataclasses import fields
from functools import reduce
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from tastesim.catalog import Decisions, PairFeatures
from tastesim.memory.protocol import WriterStats
from tastesim.memory.store import StoreSpec
from tastesim.world.shard import PopulationShard, ShardOutcome

__all__ = ["InProcessShards", "Shards", "merge_histories", "merge_outcomes", "route"]


@runtime_checkable
class Shards(Protocol):
    """A population split into shards (see module docstring)."""

    count: int

    def histories(self, agents: np.ndarray) -> sp.csr_matrix:
        """Consumed items of ``agents`` (rows in their order)."""
        ...

    def respond(self, step: int, agents: np.ndarray, slates: np.ndarray) -> ShardOutcome:
        """One step of every shard; the outcome's rows in the order of ``agents``."""
        ...

    def open_store(self, spec: StoreSpec, resume: int | None) -> None:
        """Start every shard's store writers: a new run (``resume`` None) or back to the checkpoint at ``resume``."""
        ...

    def sync(self, step: int) -> WriterStats:
        """Flush every shard's store writes and record changed strengths."""
        ...

    def close(self, step: int) -> WriterStats:
        """Flush and stop every shard's writers."""
        ...

    def abort(self) -> None:
        """Stop every shard's writers without applying what is queued (the run failed)."""
        ...

    def save(self, folder: Path, step: int) -> None:
        """Each shard writes its checkpoint file for ``step`` into ``folder``."""
        ...

    def load(self, folder: Path, step: int) -> None:
        """Each shard restores its checkpoint file for ``step``."""
        ...

    def prune(self, folder: Path, keep: int) -> None:
        """Each shard deletes its checkpoint files other than ``keep``'s."""
        ...

    def state(self) -> list[dict[str, np.ndarray]]:
        """Every shard's state (in memory: for small populations and tests)."""
        ...

    def restore(self, states: list[dict[str, np.ndarray]]) -> None:
        """Inverse of :meth:`state`."""
        ...

    def seeded(self) -> int:
        """Seeded memories of all agents."""
        ...

    def usage(self) -> list[dict[str, float]]:
        """Each shard's :meth:`PopulationShard.usage` (and, on Ray, its node)."""
        ...

    def shutdown(self) -> None:
        """Release the shards' workers (nothing to do in-process)."""
        ...


def route(agents: np.ndarray, count: int) -> list[np.ndarray]:
    """Positions in ``agents`` of each shard's agents (``agent % count``), in order."""
    if count == 1:
        return [np.arange(len(agents))]
    owner = np.asarray(agents) % count
    return [np.flatnonzero(owner == k) for k in range(count)]


def merge_histories(parts: list[sp.csr_matrix], positions: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """One CSR from the shards' rows: row ``positions[k][i]`` is ``parts[k]``'s row ``i``."""
    if len(parts) == 1:
        return parts[0]
    stacked = sp.vstack([p.tocsr() for p in parts], format="csr") if parts else sp.csr_matrix((0, n_items))
    order = np.argsort(np.concatenate(positions), kind="stable")
    return stacked[order]


def merge_outcomes(parts: list[ShardOutcome], positions: list[np.ndarray], shape: tuple[int, int]) -> ShardOutcome:
    """One outcome from the shards': rows put back at ``positions``, counts and drift sums added."""
    if len(parts) == 1:
        return parts[0]

    def rows(get, cls):
        columns = {}
        for f in fields(cls):
            first = getattr(get(parts[0]), f.name)
            out = np.zeros(shape, dtype=first.dtype)
            for part, where in zip(parts, positions, strict=True):
                out[where] = getattr(get(part), f.name)
            columns[f.name] = out
        return cls(**columns)

    return ShardOutcome(
        decisions=rows(lambda p: p.decisions, Decisions),
        features=rows(lambda p: p.features, PairFeatures),
        new_memories=sum(p.new_memories for p in parts),
        memories=sum(p.memories for p in parts),
        holdout_hits=sum(p.holdout_hits for p in parts),
        drift=reduce(lambda a, b: a + b, (p.drift for p in parts)),
    )


class InProcessShards:
    """Shards held in this process (the ``local`` engine; ``count > 1`` only splits, it runs no faster)."""

    def __init__(self, shards: list[PopulationShard]) -> None:
        self.shards = shards
        self.count = len(shards)
        self.n_items = shards[0].consumed.n_items

    def histories(self, agents: np.ndarray) -> sp.csr_matrix:
        """See :class:`Shards`."""
        positions = route(agents, self.count)
        parts = [s.histories(agents[p]) for s, p in zip(self.shards, positions, strict=True)]
        return merge_histories(parts, positions, self.n_items)

    def respond(self, step: int, agents: np.ndarray, slates: np.ndarray) -> ShardOutcome:
        """See :class:`Shards`."""
        positions = route(agents, self.count)
        parts = [s.respond(step, agents[p], slates[p]) for s, p in zip(self.shards, positions, strict=True)]
        return merge_outcomes(parts, positions, slates.shape)

    def open_store(self, spec: StoreSpec, resume: int | None) -> None:
        """See :class:`Shards`: one shard writes the whole store; several write one store shard each."""
        for k, shard in enumerate(self.shards):
            shard.open_store(spec, part=None if self.count == 1 else k, resume=resume)

    def sync(self, step: int) -> WriterStats:
        """See :class:`Shards`."""
        return WriterStats.combined([s.sync(step) for s in self.shards])

    def close(self, step: int) -> WriterStats:
        """See :class:`Shards`; every shard's writers are stopped even when one fails."""
        stats, error = [], None
        for shard in self.shards:
            try:
                stats.append(shard.close(step))
            except Exception as err:  # close the others, then raise the first failure
                error = error or err
                self.abort()
        if error is not None:
            raise error
        return WriterStats.combined(stats)

    def abort(self) -> None:
        """See :class:`Shards`."""
        for shard in self.shards:
            shard.abort()

    def save(self, folder: Path, step: int) -> None:
        """See :class:`Shards`."""
        for shard in self.shards:
            shard.save(folder, step)

    def load(self, folder: Path, step: int) -> None:
        """See :class:`Shards`."""
        for shard in self.shards:
            shard.load(folder, step)

    def prune(self, folder: Path, keep: int) -> None:
        """See :class:`Shards`."""
        for shard in self.shards:
            shard.prune(folder, keep)

    def state(self) -> list[dict[str, np.ndarray]]:
        """See :class:`Shards`."""
        return [shard.state() for shard in self.shards]

    def restore(self, states: list[dict[str, np.ndarray]]) -> None:
        """See :class:`Shards`."""
        for shard, state in zip(self.shards, states, strict=True):
            shard.restore(state)

    def seeded(self) -> int:
        """See :class:`Shards`."""
        return sum(s.seeded() for s in self.shards)

    def usage(self) -> list[dict[str, float]]:
        """See :class:`Shards` (every shard is in this process: its peak memory and CPU are the run's)."""
        return [{**s.usage(), "node": "local"} for s in self.shards]

    def shutdown(self) -> None:
        """See :class:`Shards`."""
