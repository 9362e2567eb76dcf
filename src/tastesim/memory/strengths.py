"""The strength log: how strong each long-term memory is now, beside the Chroma records that hold the memories.

A memory's record (its reason text, embedding, agent, item, polarity, category and the step it formed) never
changes once written; its *strength* changes whenever the agent meets the reason again. Writing each change
into Chroma would cost one metadata update per change (~14k/s here, a run of 100,000 agents makes millions),
and a seed memory shared by every agent of one real user (:mod:`tastesim.memory.seed`) cannot be updated for
one agent at all. So every checkpoint appends the strengths that changed since the last one to this log, one
``.npz`` part per (writer tag, step), columns ``agent, reason, polarity, strength, last``; a memory's current
strength is its latest entry, or its record's own strength when it has none. Resuming drops the parts newer
than the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tastesim.paths import atomic_write

__all__ = ["StrengthLog", "Strengths", "memory_key"]

_COLUMNS = ("agent", "reason", "polarity", "strength", "last")


def memory_key(agent: np.ndarray, reason: np.ndarray, polarity: np.ndarray) -> np.ndarray:
    """One int64 per (agent, reason, polarity), the order of record ids."""
    agent, reason = np.asarray(agent, dtype=np.int64), np.asarray(reason, dtype=np.int64)
    return (agent * (1 << 31) + reason) * 2 + (np.asarray(polarity) > 0)


@dataclass(frozen=True)
class Strengths:
    """The latest logged (strength, last step) of each memory, searchable by :func:`memory_key`."""

    keys: np.ndarray  # sorted, unique
    strength: np.ndarray
    last: np.ndarray

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(found, strength, last)`` for each key (strength and last are meaningful where found)."""
        keys = np.asarray(keys, dtype=np.int64)
        if not len(self.keys):
            return np.zeros(keys.shape, dtype=bool), np.zeros(keys.shape), np.zeros(keys.shape, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return self.keys[at] == keys, self.strength[at], self.last[at]


class StrengthLog:
    """Parts ``{tag}step-NNNNNN.npz`` in ``folder`` (a tag per journal: ``shard-K-`` for a population shard)."""

    def __init__(self, folder: Path, tag: str = "") -> None:
        self.folder = Path(folder)
        self.tag = tag

    def _parts(self, tag: str | None) -> list[tuple[int, Path]]:
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.glob("*step-*.npz"):
            head, _, number = path.stem.rpartition("step-")
            if (tag is None or head == tag) and number.isdigit():
                found.append((int(number), path))
        return sorted(found)

    def write(self, step: int, cols: dict[str, np.ndarray]) -> None:
        """Append the strengths of ``cols`` (columns agent, reason, polarity, strength, last) as of ``step``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        columns = {name: np.asarray(cols[name]) for name in _COLUMNS}
        atomic_write(self.folder / f"{self.tag}step-{step:06d}.npz", lambda tmp: np.savez(tmp, **columns))

    def drop_after(self, step: int) -> None:
        """Delete this tag's parts newer than ``step`` (resuming from a checkpoint at ``step``)."""
        for number, path in self._parts(self.tag):
            if number > step:
                path.unlink()

    def latest(self) -> Strengths:
        """The latest entry of every memory over all tags' parts (a memory is logged by one tag only)."""
        parts = []
        for _, path in self._parts(None):
            with np.load(path) as data:
                parts.append({name: data[name] for name in _COLUMNS})
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return Strengths(empty, np.zeros(0, dtype=np.float32), empty)
        cols = {name: np.concatenate([p[name] for p in parts]) for name in _COLUMNS}
        keys = memory_key(cols["agent"], cols["reason"], cols["polarity"])
        # Parts are in step order; the last occurrence of a key is its latest value.
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        last_of_run = np.r_[keys[1:] != keys[:-1], True] if len(keys) else np.zeros(0, dtype=bool)
        pick = order[last_of_run]
        return Strengths(keys[last_of_run], cols["strength"][pick], cols["last"][pick].astype(np.int64))
