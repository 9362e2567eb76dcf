"""A population shard: the state of some agents and what they do with the slates they are shown.

The driver (:class:`~tastesim.world.model.TasteModel`) runs the step story: who acts, what the recommender
shows, what the recommender learns. Everything per agent lives in shards, split by agent (shard ``k`` of
``W`` holds the agents ``a`` with ``a % W == k``): working memory, interest state, consumed items, the part
of the long-term store its agents are written to, and the decision model. Each step a shard decides, for
its acting agents, every shown item, remembers, drifts, and returns the decisions with its exact share of
the step's metrics. Every random draw is keyed by (seed, stream, step, agent), never by shard or batch, so
any split of the population gives the same run (``tastesim.engine`` holds shards in-process or on Ray).
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from tastesim.agents.consumed import ConsumedItems, HeldOutItems
from tastesim.agents.drift import click_offset, initial_state, unit_rows, update_state
from tastesim.agents.remember import remember_decisions
from tastesim.catalog import Catalog, Decisions, PairFeatures
from tastesim.memory.journal import MemoryJournal
from tastesim.memory.protocol import WriterStats
from tastesim.memory.records import RecordFactory
from tastesim.memory.store import StoreSpec
from tastesim.memory.strengths import StrengthLog
from tastesim.memory.view import STRENGTHS_FOLDER
from tastesim.memory.working import WorkingMemory
from tastesim.paths import atomic_write
from tastesim.rng import RandomTree, Stream
from tastesim.scenario import DriftConfig
from tastesim.scoring.decider import Decider
from tastesim.world.drift_metrics import DriftPartial, Groups, ShardDrift, intra_list_distance, item_similarity

__all__ = ["Perturbation", "PopulationShard", "ShardOutcome", "ShardPlan", "ShardWorld", "record_factory"]


@dataclass(frozen=True)
class Perturbation:
    """A ``perturb`` shock as the shards apply it: at ``step``, ``members`` (bool per agent, whole population)
    have their interests pulled toward the category ``category`` (unit content ``target``) by ``strength``."""

    step: int
    members: np.ndarray
    category: int
    target: np.ndarray
    strength: float


@dataclass(frozen=True)
class ShardOutcome:
    """What a shard's agents did in one step (rows in the order of the agents it was given)."""

    decisions: Decisions
    features: PairFeatures
    new_memories: int
    memories: int  # occupied working-memory slots of all its agents
    holdout_hits: int
    drift: DriftPartial


@dataclass(frozen=True)
class ShardWorld:
    """What every shard of a population shares: the catalog, the real users' data and the run's settings.

    Everything here is per *distinct* real user or per item, so it is small next to the agents, and the
    same object can be sent to every worker once.

    Attributes:
        catalog: Items, reason tables and embeddings.
        item_vectors: Unit content vector per item.
        user_memory: Each real user's seeded working memory (an agent starts from its user's).
        user_decider: The decision model with one row per real user (``for_agents`` gives an agent block's).
        user_items: ``(n_users, n_items)`` items each real user consumed before the run.
        holdout_ptr, holdout_items: Each real user's held-out items (see ``Population``).
        drift: Interest drift settings.
        group_names: The segments of the drift rows (see ``Groups``).
        perturbations: ``perturb`` shocks.
        seed: The scenario's seed (the random tree).
    """

    catalog: Catalog
    item_vectors: np.ndarray
    user_memory: WorkingMemory
    user_decider: Decider
    user_items: sp.csr_matrix
    holdout_ptr: np.ndarray
    holdout_items: np.ndarray
    drift: DriftConfig
    group_names: list[tuple[str, str]]
    perturbations: tuple[Perturbation, ...]
    seed: int


@dataclass(frozen=True)
class ShardPlan:
    """Which agents shard ``index`` of ``count`` holds: their ids, real users and segment codes."""

    index: int
    count: int
    agents: np.ndarray
    user_rows: np.ndarray
    codes: np.ndarray

    @staticmethod
    def split(user_rows: np.ndarray, codes: np.ndarray, count: int) -> list[ShardPlan]:
        """``count`` shards of a population: shard ``k`` holds the agents ``a`` with ``a % count == k``."""
        agents = np.arange(len(user_rows), dtype=np.int64)
        return [
            ShardPlan(k, count, agents[k::count], np.asarray(user_rows)[k::count], np.asarray(codes)[k::count])
            for k in range(count)
        ]


def record_factory(catalog: Catalog) -> RecordFactory:
    """How the catalog's reasons become store records."""
    tables = catalog.tables
    return RecordFactory(
        catalog.bank.texts, catalog.bank.vectors, catalog.item_ids, [tables.categories[c] for c in tables.primary]
    )


class PopulationShard:
    """The agents of one shard (rows ``0 .. n - 1`` are the agents ``agents``, ascending).

    Args:
        agents: Global agent ids of the rows.
        memory: Their working memories.
        decider: The decision model for these rows.
        consumed: Their consumed items.
        held_out: Their real users' held-out items; ``user_rows``: each row's real user.
        catalog, item_vectors, drift: See :class:`ShardWorld`.
        groups: The drift segments; ``codes``: each row's segment under each attribute.
        perturbations: ``perturb`` shocks (members over the whole population).
        seed: The scenario's seed.
        seeds: The rows' seeded memories (kept by a seed store), or ``None``.
        label: Names this shard's files (``shard-K``), empty for a population held in one shard.
    """

    def __init__(
        self,
        *,
        agents: np.ndarray,
        memory: WorkingMemory,
        decider: Decider,
        consumed: ConsumedItems,
        held_out: HeldOutItems,
        user_rows: np.ndarray,
        catalog: Catalog,
        item_vectors: np.ndarray,
        drift: DriftConfig,
        groups: Groups,
        codes: np.ndarray,
        perturbations: tuple[Perturbation, ...] = (),
        seed: int,
        seeds: WorkingMemory | None = None,
        label: str = "",
    ) -> None:
        self.agents = np.asarray(agents, dtype=np.int64)
        self.memory = memory
        self.decider = decider
        self.consumed = consumed
        self.held_out = held_out
        self.user_rows = np.asarray(user_rows, dtype=np.int64)
        self.catalog = catalog
        self.item_vectors = item_vectors
        self.drift_config = drift
        self.perturbations = perturbations
        self.tree = RandomTree(seed)
        self.seeds = seeds
        self.label = label
        self.interest = initial_state(memory, catalog.tables, catalog.bank, drift)
        self.drift = ShardDrift(self.interest, groups, codes)
        self.similarity = item_similarity(item_vectors)
        self.journal: MemoryJournal | None = None

    @staticmethod
    def build(world: ShardWorld, plan: ShardPlan) -> PopulationShard:
        """The shard of ``plan`` from what all shards share."""
        rows = np.arange(len(plan.agents))
        memory = WorkingMemory(len(plan.agents), world.user_memory.capacity)
        memory.copy_rows(rows, world.user_memory, plan.user_rows)
        seeds = WorkingMemory(len(plan.agents), world.user_memory.capacity)
        seeds.copy_rows(rows, world.user_memory, plan.user_rows)
        return PopulationShard(
            agents=plan.agents,
            memory=memory,
            decider=world.user_decider.for_agents(plan.user_rows),
            consumed=ConsumedItems(world.user_items, plan.user_rows),
            held_out=HeldOutItems(world.holdout_ptr, world.holdout_items, world.user_items.shape[1]),
            user_rows=plan.user_rows,
            catalog=world.catalog,
            item_vectors=world.item_vectors,
            drift=world.drift,
            groups=Groups(world.group_names, np.zeros((0, plan.codes.shape[1]), dtype=np.int32)),
            codes=plan.codes,
            perturbations=world.perturbations,
            seed=world.seed,
            seeds=seeds,
            label=f"shard-{plan.index}" if plan.count > 1 else "",
        )

    # -- the long-term store ---------------------------------------------------------------------------
    def open_store(self, spec: StoreSpec, *, part: int | None = None, resume: int | None = None) -> None:
        """Start the writer processes of this shard's store: the part ``part`` of ``spec`` (all of it when
        ``None``), then start it empty (a new run) or bring it back to the checkpoint at step ``resume`` (the
        one this shard was restored from). Returns once the writers have opened their stores.

        Raises:
            MemoryWriterError: A store could not be opened.
        """
        target = spec if part is None else spec.parts()[part]
        log = None
        if spec.index is not None:
            log = StrengthLog(spec.index / STRENGTHS_FOLDER, f"{self.label}-" if self.label else "")
        seeds = self.seeds if spec.seed is not None else None
        self.journal = MemoryJournal(
            target, self.memory, record_factory(self.catalog), agents=self.agents, log=log, seeds=seeds
        )
        if resume is None:
            self.journal.restart()
        else:
            self.journal.reconcile(resume)
        self.journal.writer.ready()

    def sync(self, step: int) -> WriterStats:
        """Flush the store writes and record changed strengths (a checkpoint)."""
        return self.journal.sync(step) if self.journal is not None else WriterStats()

    def close(self, step: int) -> WriterStats:
        """Flush and stop the writers."""
        return self.journal.close(step) if self.journal is not None else WriterStats()

    def abort(self) -> None:
        """Stop the writers without applying what is queued."""
        if self.journal is not None:
            self.journal.abort()

    def usage(self) -> dict[str, float]:
        """What this shard costs: its agents, the bytes of its per-agent state, and its process's peak resident
        memory and CPU seconds so far (the process holds other things too: the catalog, the decision model)."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "agents": len(self.agents),
            "state_bytes": self.state_bytes(),
            "peak_rss_bytes": usage.ru_maxrss * 1024,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "pid": os.getpid(),
        }

    def state_bytes(self) -> int:
        """Bytes of the per-agent arrays: working memory, interest state, clicks, decision context, drift."""
        arrays = [*self.memory.state().values(), *self.interest.arrays().values(), self.drift.cats, self.drift.shift]
        arrays += [self.drift.narrowing, self.user_rows, self.agents, self.drift.codes]
        clicks = self.consumed.clicks
        context = getattr(self.decider, "context", None)
        extra = clicks.data.nbytes + clicks.indices.nbytes + clicks.indptr.nbytes
        if context is not None:
            extra += context.stat.user_interact.nbytes + context.stat.user_like.nbytes + context.agent_user.nbytes
        if self.seeds is not None:
            arrays += list(self.seeds.state().values())
        return int(sum(a.nbytes for a in arrays) + extra)

    def seeded(self) -> int:
        """Seeded memories of this shard's agents."""
        return int((self.seeds.reason >= 0).sum()) if self.seeds is not None else 0

    # -- a step ----------------------------------------------------------------------------------------
    def rows_of(self, agents: np.ndarray) -> np.ndarray:
        """Rows of global agent ids (which this shard holds)."""
        return np.searchsorted(self.agents, agents)

    def histories(self, agents: np.ndarray) -> sp.csr_matrix:
        """Consumed items of ``agents`` (CSR float32, 1.0 per item)."""
        return self.consumed.rows(self.rows_of(agents))

    def perturb(self, step: int) -> None:
        """Apply the ``perturb`` shocks of exactly ``step`` to this shard's members."""
        state = self.interest
        for shock in self.perturbations:
            if shock.step != step:
                continue
            rows = np.flatnonzero(shock.members[self.agents])
            centroid = unit_rows(state.mass[rows])
            norm = np.linalg.norm(state.mass[rows], axis=1, keepdims=True)
            moved = (1 - shock.strength) * centroid + shock.strength * shock.target
            state.mass[rows] = moved / np.maximum(np.linalg.norm(moved, axis=1, keepdims=True), 1e-12) * norm
            onehot = np.zeros(state.categories.shape[1], dtype=np.float32)
            onehot[shock.category] = 1.0
            state.categories[rows] = (1 - shock.strength) * state.categories[rows] + shock.strength * onehot
            self.drift.refresh(state, rows)

    def respond(self, step: int, agents: np.ndarray, slates: np.ndarray) -> ShardOutcome:
        """The step of this shard: perturbations due now, then the acting ``agents`` (global ids, ascending)
        decide on their ``slates``, remember, and drift."""
        self.perturb(step)
        rows = self.rows_of(agents)
        offset = None
        if self.drift_config.enabled:
            draws = self.tree.keyed(Stream.EXPLORE, step).rows(agents)
            offset = click_offset(
                self.interest,
                rows,
                slates,
                vectors=self.item_vectors,
                primary=self.catalog.tables.primary,
                params=self.drift_config,
                draws=draws,
            )
        draws = self.tree.keyed(Stream.DECIDE, step).rows(agents)
        decisions, features = self.decider.decide(self.memory, rows, slates, draws, offset)
        row_of = np.broadcast_to(rows[:, None], slates.shape)
        self.consumed.add(row_of[decisions.click], slates[decisions.click])
        new = self._remember(rows, slates, decisions, step)
        cats_before = self.drift.category_sums()
        moved_rows, moved = np.zeros(0, dtype=np.int64), np.zeros(0)
        if self.drift_config.enabled:
            moves = update_state(
                self.interest,
                rows,
                slates,
                decisions,
                vectors=self.item_vectors,
                primary=self.catalog.tables.primary,
                params=self.drift_config,
            )
            moved_rows, moved = moves.rows, 1 - moves.step_cos
            self.drift.refresh(self.interest, moved_rows, start_cos=moves.start_cos)
        shown = slates >= 0
        hits = self.held_out.hits(self.user_rows[row_of[shown]], slates[shown])
        ild = intra_list_distance(slates, self.item_vectors, self.similarity)
        return ShardOutcome(
            decisions,
            features,
            new_memories=new,
            memories=int((self.memory.reason >= 0).sum()),
            holdout_hits=hits,
            drift=self.drift.partial(cats_before, moved_rows, moved, rows, ild),
        )

    def _remember(self, rows: np.ndarray, slates: np.ndarray, decisions: Decisions, step: int) -> int:
        """Liked items add like memories, disliked items dislike memories; the store follows behind."""
        changes = remember_decisions(self.memory, self.catalog.tables, rows, slates, decisions, step=step)
        if self.journal is not None:
            for change in changes:
                self.journal.reinforced(change.reinforced)
                self.journal.created(change.created)
        return sum(len(change.created) for change in changes)

    # -- checkpoints -----------------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """Everything of this shard that a run changes (the rest is rebuilt from the scenario)."""
        interest = self.interest
        return {
            **{f"memory_{k}": v for k, v in self.memory.state().items()},
            "interest_mass": interest.mass,
            "interest_categories": interest.categories,
            "interest_satiation": interest.satiation,
            **{f"consumed_{k}": v for k, v in self.consumed.state().items()},
            "drift_shift": self.drift.shift,
        }

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`state` (on a shard built as at the start of the run)."""
        for f in ("reason", "polarity", "category_mask", "strength", "created", "last", "item"):
            getattr(self.memory, f)[...] = state[f"memory_{f}"]
        self.interest.mass[...] = state["interest_mass"]
        self.interest.categories[...] = state["interest_categories"]
        self.interest.satiation[...] = state["interest_satiation"]
        self.consumed.load({"rows": state["consumed_rows"], "items": state["consumed_items"]})
        self.drift.refresh(self.interest, np.arange(len(self.agents)))
        shift = np.asarray(state["drift_shift"], dtype=np.int64)
        self.drift.shift_sums += self.drift.groups.sums(self.drift.codes, shift - self.drift.shift)
        self.drift.shift[...] = shift

    def file(self, folder: Path, step: int) -> Path:
        """This shard's checkpoint file for ``step``."""
        return folder / f"{self.label or 'population'}-step-{step:06d}.npz"

    def save(self, folder: Path, step: int) -> None:
        """Write :meth:`state` to this shard's checkpoint file for ``step`` (atomically)."""
        folder.mkdir(parents=True, exist_ok=True)
        state = self.state()
        atomic_write(self.file(folder, step), lambda tmp: np.savez(tmp, **state))

    def load(self, folder: Path, step: int) -> None:
        """Restore from this shard's checkpoint file for ``step``."""
        with np.load(self.file(folder, step)) as data:
            self.restore({k: data[k] for k in data.files})

    def prune(self, folder: Path, keep: int) -> None:
        """Delete this shard's checkpoint files other than the one for step ``keep``."""
        head = f"{self.label or 'population'}-step-"
        for path in folder.glob(f"{head}*.npz"):
            if path != self.file(folder, keep):
                path.unlink(missing_ok=True)
