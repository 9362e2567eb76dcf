"""Working memory of every agent in RAM: the reasons the scorer reads, consolidated by strength.

Each agent holds at most ``capacity`` distinct (reason, polarity) memories. Remembering a reason the agent
already holds adds to its strength; a new reason takes a free slot or evicts the weakest (then oldest)
memory (a newcomer weaker than every held memory is not kept). Evicted memories stay in the long-term
store (Chroma); only the working set drives decisions.
Every change is reported as a :class:`MemoryChanges` so the store can be kept in step behind the run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DISLIKE", "LIKE", "MemoryChanges", "WorkingMemory"]

LIKE = 1
DISLIKE = -1

_FIELDS = ("reason", "polarity", "category_mask", "strength", "created", "last", "item")


@dataclass(frozen=True)
class MemoryChanges:
    """Slots created (new to the agent) and slots reinforced during one ``remember`` call."""

    created: np.ndarray  # (k, 2) int64 rows of (agent, slot)
    reinforced: np.ndarray  # (k, 2)


class WorkingMemory:
    """Padded arrays ``(n_agents, capacity)``; a slot with ``reason == -1`` is empty."""

    def __init__(self, n_agents: int, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("memory capacity must be at least 1")
        self.capacity = capacity
        shape = (n_agents, capacity)
        self.reason = np.full(shape, -1, dtype=np.int32)
        self.polarity = np.zeros(shape, dtype=np.int8)
        self.category_mask = np.zeros(shape, dtype=np.int64)
        self.strength = np.zeros(shape, dtype=np.float32)
        self.created = np.zeros(shape, dtype=np.int32)
        self.last = np.zeros(shape, dtype=np.int32)
        self.item = np.full(shape, -1, dtype=np.int32)

    @property
    def n_agents(self) -> int:
        """Number of agents."""
        return self.reason.shape[0]

    def count(self) -> np.ndarray:
        """Occupied slots per agent."""
        return (self.reason >= 0).sum(axis=1)

    def state(self) -> dict[str, np.ndarray]:
        """Arrays for a checkpoint."""
        return {name: getattr(self, name) for name in _FIELDS}

    def copy_rows(self, rows: np.ndarray, source: WorkingMemory, source_rows: np.ndarray) -> None:
        """Overwrite ``rows`` with ``source``'s ``source_rows`` (same capacity)."""
        for name in _FIELDS:
            getattr(self, name)[rows] = getattr(source, name)[source_rows]

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> WorkingMemory:
        """Inverse of :meth:`state`."""
        n, capacity = state["reason"].shape
        memory = cls(n, capacity)
        for name in _FIELDS:
            getattr(memory, name)[...] = state[name]
        return memory

    def remember(
        self,
        *,
        agents: np.ndarray,
        reasons: np.ndarray,
        polarity: np.ndarray,
        category_mask: np.ndarray,
        items: np.ndarray,
        step: int,
        weight: np.ndarray | None = None,
    ) -> MemoryChanges:
        """Record reason events (one row each); duplicates within the call are merged.

        Args:
            agents, reasons, polarity, category_mask, items: Parallel 1-d arrays, one row per event.
            step: The simulation step (stored as created/last step).
            weight: Strength added per event (default 1).
        """
        weight = np.ones(len(agents), dtype=np.float32) if weight is None else weight.astype(np.float32)
        valid = reasons >= 0
        agents, reasons, polarity = agents[valid], reasons[valid], polarity[valid]
        category_mask, items, weight = category_mask[valid], items[valid], weight[valid]
        if agents.size == 0:
            empty = np.zeros((0, 2), dtype=np.int64)
            return MemoryChanges(empty, empty)
        # Merge duplicate (agent, reason, polarity) events: sum weights, OR masks, keep the first item.
        key = (agents.astype(np.int64) * (1 << 32) + reasons.astype(np.int64)) * 2 + (polarity > 0)
        unique, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        total = np.bincount(inverse, weights=weight, minlength=unique.size).astype(np.float32)
        mask = np.zeros(unique.size, dtype=np.int64)
        np.bitwise_or.at(mask, inverse, category_mask)
        agents, reasons, polarity, items = agents[first], reasons[first], polarity[first], items[first]

        match = (self.reason[agents] == reasons[:, None]) & (self.polarity[agents] == polarity[:, None])
        found = match.any(axis=1)
        slot = match.argmax(axis=1)
        a, s = agents[found], slot[found]
        self.strength[a, s] += total[found]
        self.category_mask[a, s] |= mask[found]
        self.last[a, s] = step
        reinforced = np.stack([a, s], axis=1).astype(np.int64)

        new = np.flatnonzero(~found)
        created_arr = self._place(
            agents=agents[new],
            reasons=reasons[new],
            polarity=polarity[new],
            mask=mask[new],
            items=items[new],
            strength=total[new],
            step=step,
        )
        return MemoryChanges(created_arr, reinforced)

    def _place(
        self,
        *,
        agents: np.ndarray,
        reasons: np.ndarray,
        polarity: np.ndarray,
        mask: np.ndarray,
        items: np.ndarray,
        strength: np.ndarray,
        step: int,
    ) -> np.ndarray:
        """Put new memories in slots: free slots first, then evict the weakest, least recent memories.

        Per agent the strongest newcomer takes the first slot in eviction order, the next the second, and
        so on. A newcomer weaker than the memory it would evict is dropped, and a memory formed in this
        step is never evicted. Returns the ``(agent, slot)`` rows that were filled.
        """
        if agents.size == 0:
            return np.zeros((0, 2), dtype=np.int64)
        order = np.lexsort((-strength, agents))
        agents, reasons, polarity, mask, items, strength = (
            x[order] for x in (agents, reasons, polarity, mask, items, strength)
        )
        owners, start, counts = np.unique(agents, return_index=True, return_counts=True)
        group = np.repeat(np.arange(owners.size), counts)
        rank = np.arange(agents.size) - np.repeat(start, counts)
        free = self.reason[owners] < 0
        fresh = (self.created[owners] == step) & (self.last[owners] == step) & ~free
        kind = np.where(free, 0, np.where(fresh, 2, 1))  # 0 free, 1 evictable, 2 formed this step
        slot_order = np.lexsort((self.last[owners], self.strength[owners], kind), axis=-1)
        fits = rank < self.capacity
        group, rank, keep = group[fits], rank[fits], np.flatnonzero(fits)
        slot = slot_order[group, rank]
        slot_kind = kind[group, slot]
        accept = (slot_kind == 0) | ((slot_kind == 1) & (strength[keep] >= self.strength[owners[group], slot]))
        rows, slot, keep = owners[group][accept], slot[accept], keep[accept]
        self.reason[rows, slot] = reasons[keep]
        self.polarity[rows, slot] = polarity[keep]
        self.category_mask[rows, slot] = mask[keep]
        self.strength[rows, slot] = strength[keep]
        self.created[rows, slot] = step
        self.last[rows, slot] = step
        self.item[rows, slot] = items[keep]
        return np.stack([rows, slot], axis=1).astype(np.int64)
