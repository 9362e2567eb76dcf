"""Keeps the long-term store in step with working memory, behind the simulation.

New memories are sent to the writer as soon as they form; reinforcements only mark the slot dirty and
are written as one batched metadata update per checkpoint (a strength may change many times between two
checkpoints but costs one write).
"""

from __future__ import annotations

from types import TracebackType

import numpy as np

from tastesim.memory.protocol import WriterStats
from tastesim.memory.records import RecordFactory
from tastesim.memory.store import StoreSpec
from tastesim.memory.working import WorkingMemory
from tastesim.memory.writer import MemoryWriter

__all__ = ["MemoryJournal"]


class MemoryJournal:
    """Translates working-memory slot changes into writer messages.

    A context manager: leaving the block closes the journal, or aborts its writer when the block raised
    (see :class:`MemoryWriter`).
    """

    def __init__(self, spec: StoreSpec, memory: WorkingMemory, factory: RecordFactory) -> None:
        self.memory = memory
        self.writer = MemoryWriter(spec, factory)
        self._dirty = np.zeros(memory.reason.shape, dtype=bool)

    def _columns(self, a: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
        m = self.memory
        return {
            "agent": a.astype(np.int64),
            "reason": m.reason[a, s],
            "polarity": m.polarity[a, s],
            "item": m.item[a, s],
            "created": m.created[a, s],
            "strength": m.strength[a, s],
            "last": m.last[a, s],
        }

    def created(self, slots: np.ndarray) -> None:
        """Send newly formed memories (rows of ``(agent, slot)``)."""
        if slots.size:
            slots = np.unique(slots, axis=0)
            self.writer.add(self._columns(slots[:, 0], slots[:, 1]))
            self._dirty[slots[:, 0], slots[:, 1]] = False

    def reinforced(self, slots: np.ndarray) -> None:
        """Mark reinforced memories for the next batched strength update."""
        if slots.size:
            self._dirty[slots[:, 0], slots[:, 1]] = True

    def restart(self) -> None:
        """Empty the store and send every working memory as new (a run starting from step 0)."""
        self.writer.reset()
        self.created(np.argwhere(self.memory.reason >= 0))

    def reconcile(self, step: int) -> None:
        """Bring the store back to the checkpoint at ``step`` whose state is in working memory now."""
        a, s = np.nonzero(self.memory.reason >= 0)
        self.writer.reconcile(step, self._columns(a, s))

    def sync(self) -> WriterStats:
        """Send one update per dirty memory and wait until every write so far is applied."""
        a, s = np.nonzero(self._dirty & (self.memory.reason >= 0))
        self.writer.update(self._columns(a, s))
        self._dirty[...] = False
        return self.writer.flush()

    def close(self) -> WriterStats:
        """Sync and stop the writer processes (closing twice is harmless; a failed sync aborts them)."""
        if not self.writer.closed:
            with self.writer:
                self.sync()
        return self.writer.stats

    def __enter__(self) -> MemoryJournal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.writer.abort()
