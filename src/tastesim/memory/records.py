"""Slot columns to store records: what a writer process does with the rows the simulation sends.

The simulation sends compact columns (agent, reason, polarity, item, created, strength, last, and optionally
``reformed``: the memory was seeded, forgotten and formed again, so this record replaces its seed record);
a :class:`RecordFactory` turns them into records (id, text, embedding, metadata) of a :class:`MemoryStore`.
A record that replaces a seed record carries ``reformed: True`` in its metadata (the key is absent otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tastesim.memory.store import MemoryStore, record_id

__all__ = ["RecordFactory"]


@dataclass(frozen=True)
class RecordFactory:
    """Turns slot columns into store records (runs inside the writer process)."""

    reason_texts: list[str]
    reason_vectors: np.ndarray
    item_ids: list[str]
    item_categories: list[str]

    def ids(self, cols: dict[str, np.ndarray]) -> list[str]:
        """Record ids of the rows."""
        return [
            record_id(int(a), int(r), int(p))
            for a, r, p in zip(cols["agent"], cols["reason"], cols["polarity"], strict=True)
        ]

    def add(self, store: MemoryStore, cols: dict[str, np.ndarray], known: set[str]) -> None:
        """Insert one record per row: plain inserts for new ids, upserts for ids in ``known`` (updated)."""
        ids = self.ids(cols)
        seen = np.array([i in known for i in ids], dtype=bool)
        if seen.any():
            self._write(store, {k: v[seen] for k, v in cols.items()}, overwrite=True)
        if (~seen).any():
            self._write(store, {k: v[~seen] for k, v in cols.items()}, overwrite=False)
        known.update(ids)

    def _write(self, store: MemoryStore, cols: dict[str, np.ndarray], overwrite: bool) -> None:
        reasons = cols["reason"]
        reformed = cols.get("reformed", np.zeros(len(reasons), dtype=bool))
        metadatas = [
            {
                "agent_id": int(a),
                "item_id": self.item_ids[i],
                "polarity": "like" if p > 0 else "dislike",
                "category": self.item_categories[i],
                "step": int(c),
                "strength": float(s),
                "last_step": int(t),
                **({"reformed": True} if again else {}),
            }
            for a, i, p, c, s, t, again in zip(
                cols["agent"],
                cols["item"],
                cols["polarity"],
                cols["created"],
                cols["strength"],
                cols["last"],
                reformed,
                strict=True,
            )
        ]
        store.add(
            self.ids(cols), self.reason_vectors[reasons], [self.reason_texts[r] for r in reasons], metadatas, overwrite
        )

    def update(self, store: MemoryStore, cols: dict[str, np.ndarray]) -> None:
        """Update strength and last step of existing records."""
        metas = [
            {"strength": float(s), "last_step": int(t)} for s, t in zip(cols["strength"], cols["last"], strict=True)
        ]
        store.update(self.ids(cols), metas)

    def reconcile(self, store: MemoryStore, step: int, cols: dict[str, np.ndarray]) -> None:
        """Make the store match a checkpoint taken at ``step`` whose working memory is ``cols``.

        Records created after the checkpoint are deleted; records strengthened after it get the
        checkpoint's values back (those no longer in working memory keep their latest strength).
        """
        store.delete_after(step)
        touched = set(store.ids_touched_after(step))
        if touched:
            keep = np.array([rid in touched for rid in self.ids(cols)], dtype=bool)
            if keep.any():
                self.update(store, {k: v[keep] for k, v in cols.items()})
