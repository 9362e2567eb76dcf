"""Writer processes that keep the long-term store in step, behind the simulation.

Chroma's client validates every record in Python, so a writer *thread* would hold the GIL against the
simulation. A writer is therefore a separate process that owns its store (or its shard of the store)
while the run goes on. Embedded Chroma writes on about one core (~1-2k records/s here), so a sharded
store gets one process per shard and a second core writes in parallel (``bench/chroma_write_cost.py``).
The simulation sends compact columns (agent, slot values) and returns at once; each process turns its
agents' rows into records (id, text, embedding, metadata) and writes them in batches. ``flush`` waits
until everything sent so far is applied and reports the counters; an error in a process is raised there.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from tastesim.memory.store import MemoryStore, StoreSpec, record_id, shard_of

__all__ = ["MemoryWriter", "RecordFactory", "WriterStats"]

_BATCH = 5000


@dataclass(frozen=True)
class WriterStats:
    """Counters of the writer process."""

    records_added: int = 0
    records_updated: int = 0
    seconds_writing: float = 0.0
    records_in_store: int = 0

    @staticmethod
    def combined(shards: list[WriterStats]) -> WriterStats:
        """Counters of shards written in parallel: sums, and the longest shard's writing time."""
        return WriterStats(
            sum(s.records_added for s in shards),
            sum(s.records_updated for s in shards),
            max(s.seconds_writing for s in shards),
            sum(s.records_in_store for s in shards),
        )


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
        metadatas = [
            {
                "agent_id": int(a),
                "item_id": self.item_ids[i],
                "polarity": "like" if p > 0 else "dislike",
                "category": self.item_categories[i],
                "step": int(c),
                "strength": float(s),
                "last_step": int(t),
            }
            for a, i, p, c, s, t in zip(
                cols["agent"],
                cols["item"],
                cols["polarity"],
                cols["created"],
                cols["strength"],
                cols["last"],
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


def _serve(spec: StoreSpec, factory: RecordFactory, inbox: Any, outbox: Any) -> None:
    store = spec.open()
    known: set[str] | None = None  # ids in the store, read on the first add (a resumed run has some)
    added = updated = 0
    busy = 0.0
    error: str | None = None
    while True:
        kind, payload = inbox.get()
        if kind in ("stop", "flush"):
            outbox.put((kind, WriterStats(added, updated, busy, store.count()), error))
            if kind == "stop":
                return
            continue
        if error is not None:
            continue
        started = time.perf_counter()
        try:
            if kind == "reset":
                store.drop()
                store = spec.open()
                known = set()
                continue
            if kind == "reconcile":
                factory.reconcile(store, payload.pop("step"), payload)
                known = None
                continue
            n = len(payload["agent"])
            for lo in range(0, n, _BATCH):
                part = {k: v[lo : lo + _BATCH] for k, v in payload.items()}
                if kind == "add":
                    known = set(store.ids()) if known is None else known
                    factory.add(store, part, known)
                else:
                    factory.update(store, part)
            if kind == "add":
                added += n
            else:
                updated += n
        except Exception as err:
            error = f"{type(err).__name__}: {err}"
        busy += time.perf_counter() - started


class MemoryWriter:
    """Client side of the writer processes, one per shard of ``spec``; rows go to their agent's shard."""

    def __init__(self, spec: StoreSpec, factory: RecordFactory) -> None:
        ctx = mp.get_context("spawn")
        self._inboxes = [ctx.Queue() for _ in range(spec.shards)]
        self._outboxes = [ctx.Queue() for _ in range(spec.shards)]
        self._processes = [
            ctx.Process(target=_serve, args=(part, factory, inbox, outbox), daemon=True)
            for part, inbox, outbox in zip(spec.parts(), self._inboxes, self._outboxes, strict=True)
        ]
        for process in self._processes:
            process.start()
        self.stats = WriterStats()
        self._open = True

    def add(self, cols: dict[str, np.ndarray]) -> None:
        """Send new records (columns agent, reason, polarity, item, created, strength, last)."""
        self._send("add", cols)

    def update(self, cols: dict[str, np.ndarray]) -> None:
        """Send strength updates (columns agent, reason, polarity, strength, last)."""
        self._send("update", cols)

    def reset(self) -> None:
        """Empty the store (a run that never checkpointed starts over)."""
        for inbox in self._inboxes:
            inbox.put(("reset", None))

    def reconcile(self, step: int, cols: dict[str, np.ndarray]) -> None:
        """Bring the store back to a checkpoint (see :meth:`RecordFactory.reconcile`)."""
        for inbox, part in zip(self._inboxes, self._split(cols), strict=True):
            inbox.put(("reconcile", {"step": step, **part}))

    def flush(self) -> WriterStats:
        """Wait until everything sent is written; raise if a process failed."""
        return self._roundtrip("flush")

    def close(self) -> WriterStats:
        """Flush and stop the processes."""
        if not self._open:
            return self.stats
        stats = self._roundtrip("stop")
        for process in self._processes:
            process.join(timeout=60)
        self._open = False
        return stats

    def _split(self, cols: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        if len(self._inboxes) == 1:
            return [cols]
        shard = shard_of(cols["agent"], len(self._inboxes))
        return [{k: v[shard == i] for k, v in cols.items()} for i in range(len(self._inboxes))]

    def _send(self, kind: str, cols: dict[str, np.ndarray]) -> None:
        for inbox, part in zip(self._inboxes, self._split(cols), strict=True):
            if len(part["agent"]):
                inbox.put((kind, part))

    def _roundtrip(self, kind: str) -> WriterStats:
        for inbox in self._inboxes:
            inbox.put((kind, None))
        replies = [self._reply(box, process) for box, process in zip(self._outboxes, self._processes, strict=True)]
        self.stats = WriterStats.combined([stats for stats, _ in replies])
        errors = [error for _, error in replies if error is not None]
        if errors:
            raise RuntimeError(f"memory writer failed: {errors[0]}")
        return self.stats

    @staticmethod
    def _reply(outbox: Any, process: Any) -> tuple[WriterStats, str | None]:
        while True:
            try:
                _, stats, error = outbox.get(timeout=5)
                return stats, error
            except Exception as err:  # queue.Empty: check the process is alive, keep waiting
                if not process.is_alive():
                    raise RuntimeError("the memory writer process died") from err
