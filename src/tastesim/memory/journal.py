"""Keeps the long-term store in step with working memory, behind the simulation.

New memories are sent to the writer as soon as they form (one record each, written once). Reinforcements
only mark the slot dirty; at each checkpoint (``sync``) the strengths of the dirty slots are appended to the
run's strength log (:mod:`tastesim.memory.strengths`), or, without a log, written to the records as one
batched metadata update. A strength may change many times between two checkpoints but costs one entry.

With a seed store (``seeds``), an agent's seeded memories are already stored, shared with every agent of its
real user; the run store receives only the memories the run forms.
"""

from __future__ import annotations

from dataclasses import replace
from types import TracebackType

import numpy as np

from tastesim.memory.protocol import WriterStats
from tastesim.memory.records import RecordFactory
from tastesim.memory.store import StoreSpec
from tastesim.memory.strengths import StrengthLog
from tastesim.memory.working import WorkingMemory
from tastesim.memory.writer import MemoryWriter

__all__ = ["MemoryJournal"]


class MemoryJournal:
    """Translates working-memory slot changes into writer messages and strength-log entries.

    Args:
        spec: The run store (or the part of it these agents are written to).
        memory: The working memory whose changes are journaled.
        factory: Turns slot columns into records (in the writer processes).
        agents: The agent id of each memory row (default: the row itself).
        log: Where changed strengths go at each ``sync``; ``None`` writes them to the records instead.
        seeds: The rows' seeded memories when a seed store holds them: nothing is written for them, and the
            record of a memory formed again after being forgotten is marked ``reformed`` (it replaces the
            seed record).

    A context manager: leaving the block closes the journal, or aborts its writer when the block raised
    (see :class:`MemoryWriter`).
    """

    def __init__(
        self,
        spec: StoreSpec,
        memory: WorkingMemory,
        factory: RecordFactory,
        *,
        agents: np.ndarray | None = None,
        log: StrengthLog | None = None,
        seeds: WorkingMemory | None = None,
    ) -> None:
        self.memory = memory
        self.agents = np.arange(memory.n_agents, dtype=np.int64) if agents is None else np.asarray(agents, np.int64)
        self.log = log
        self.seeds = seeds
        self.logged = 0  # strength entries logged in this session
        self.writer = MemoryWriter(spec, factory)
        self._dirty = np.zeros(memory.reason.shape, dtype=bool)

    def _columns(self, a: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
        m = self.memory
        return {
            "agent": self.agents[a],
            "reason": m.reason[a, s],
            "polarity": m.polarity[a, s],
            "item": m.item[a, s],
            "created": m.created[a, s],
            "strength": m.strength[a, s],
            "last": m.last[a, s],
        }

    def created(self, slots: np.ndarray) -> None:
        """Send newly formed memories (rows of ``(row, slot)``)."""
        if not slots.size:
            return
        slots = np.unique(slots, axis=0)
        rows, s = slots[:, 0], slots[:, 1]
        cols = self._columns(rows, s)
        if self.seeds is not None:
            again = (self.seeds.reason[rows] == cols["reason"][:, None]) & (
                self.seeds.polarity[rows] == cols["polarity"][:, None]
            )
            cols["reformed"] = again.any(axis=1)
        self.writer.add(cols)
        self._dirty[rows, s] = False

    def reinforced(self, slots: np.ndarray) -> None:
        """Mark reinforced memories for the next strength entry (or batched update)."""
        if slots.size:
            self._dirty[slots[:, 0], slots[:, 1]] = True

    def restart(self) -> None:
        """Empty the run store; without a seed store, send every working memory as new (a run at step 0)."""
        self.writer.reset()
        if self.log is not None:
            self.log.drop_after(-1)
        if self.seeds is None:
            self.created(np.argwhere(self.memory.reason >= 0))

    def reconcile(self, step: int) -> None:
        """Bring the store back to the checkpoint at ``step`` whose state is in working memory now.

        Records formed after it are deleted; strengths changed after it are dropped from the log (or, without
        a log, restored in the records).
        """
        if self.log is not None:
            self.log.drop_after(step)
            empty = {k: v[:0] for k, v in self._columns(np.zeros(0, np.int64), np.zeros(0, np.int64)).items()}
            self.writer.reconcile(step, empty)
        else:
            a, s = np.nonzero(self.memory.reason >= 0)
            self.writer.reconcile(step, self._columns(a, s))

    def sync(self, step: int | None = None) -> WriterStats:
        """Record the strengths changed since the last sync as of ``step`` (default: the latest step among
        them), and wait until every write so far is applied."""
        a, s = np.nonzero(self._dirty & (self.memory.reason >= 0))
        if self.log is not None:
            if len(a):
                cols = self._columns(a, s)
                self.log.write(int(cols["last"].max()) if step is None else step, cols)
                self.logged += len(a)
        else:
            self.writer.update(self._columns(a, s))
        self._dirty[...] = False
        return self._with_logged(self.writer.flush())

    def _with_logged(self, stats: WriterStats) -> WriterStats:
        """The writer's counters, strength entries logged counted as strength updates."""
        return replace(stats, records_updated=stats.records_updated + self.logged)

    def close(self, step: int | None = None) -> WriterStats:
        """Sync and stop the writer processes (closing twice is harmless; a failed sync aborts them)."""
        if not self.writer.closed:
            with self.writer:
                self.sync(step)
        return self._with_logged(self.writer.stats)

    def abort(self) -> None:
        """Stop the writer processes without applying what is queued (the run failed)."""
        self.writer.abort()

    def __enter__(self) -> MemoryJournal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.writer.abort()
