"""The seed store: every real user's seeded memories, written once and shared by every run and every agent.

An agent starts with its source user's seeded working memory (the strongest reasons of its training
history). Those memories depend only on the data, the item profiles and the seeding settings, never on the
run, and a population resampled from 943 users to 100,000 agents holds 943 distinct seedings. So they are
written once, one record per (real user, reason, polarity), id ``u{user}-r{reason}-{L|D}``, metadata
``{text, user_id, item_id, polarity, category, step: 0, strength, last_step: 0}``, into a store named by a
hash of its own content: in the cache folder (embedded, ``seed-memories/<key>``) or as the collection
``tastesim-seed-<key>`` on the run's Chroma server. A run's own store then holds only the memories the run
forms (see :mod:`tastesim.memory.view` for how a memory is found).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tastesim.memory.records import RecordFactory
from tastesim.memory.store import MemoryStore, open_store
from tastesim.memory.working import WorkingMemory

__all__ = ["SeedSpec", "ensure_seed_store", "seed_key", "seed_record_id", "seed_spec"]

_BATCH = 5000
_DONE = "complete"  # collection metadata key (server) / marker file (embedded) of a finished seed store


def seed_record_id(user: str, reason: int, polarity: int) -> str:
    """Stable id of one seeded memory of a real user."""
    return f"u{user}-r{reason}-{'L' if polarity > 0 else 'D'}"


@dataclass(frozen=True)
class SeedSpec:
    """Where a seed store lives: an embedded folder, or a collection on a Chroma server."""

    key: str
    collection: str
    path: Path | None = None
    server: str | None = None

    def open(self) -> MemoryStore:
        """Open the seed store (it must have been built, see :func:`ensure_seed_store`)."""
        return open_store(self.path, self.collection, self.server)

    def to_json(self) -> str:
        """For the run folder's ``memory-index/seed.json``."""
        data = asdict(self)
        data["path"] = None if self.path is None else str(self.path)
        return json.dumps(data, indent=2) + "\n"

    @staticmethod
    def from_json(text: str) -> SeedSpec:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        return SeedSpec(data["key"], data["collection"], None if data["path"] is None else Path(data["path"]),
                        data["server"])  # fmt: skip


def seed_key(user_ids: np.ndarray, memory: WorkingMemory, factory: RecordFactory) -> str:
    """A hash of everything the seed records hold: users, reasons (texts and vectors), items, strengths."""
    digest = hashlib.sha256()
    used = np.unique(memory.reason[memory.reason >= 0])
    items = np.unique(memory.item[memory.item >= 0])
    for array in (memory.reason, memory.polarity, memory.strength, memory.item, factory.reason_vectors[used]):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps([str(u) for u in user_ids]).encode())
    digest.update(json.dumps([factory.reason_texts[r] for r in used]).encode())
    digest.update(json.dumps([[factory.item_ids[i], factory.item_categories[i]] for i in items]).encode())
    return digest.hexdigest()[:24]


def seed_spec(key: str, cache_dir: Path, server: str | None) -> SeedSpec:
    """The seed store of ``key``: on ``server`` when given, else embedded under ``cache_dir/seed-memories``."""
    collection = f"tastesim-seed-{key}"
    if server:
        return SeedSpec(key, collection, None, server)
    return SeedSpec(key, collection, Path(cache_dir) / "seed-memories" / key, None)


def _columns(user_ids: np.ndarray, memory: WorkingMemory) -> dict[str, np.ndarray]:
    rows, slots = np.nonzero(memory.reason >= 0)
    return {
        "user": np.asarray(user_ids)[rows],
        "reason": memory.reason[rows, slots],
        "polarity": memory.polarity[rows, slots],
        "item": memory.item[rows, slots],
        "strength": memory.strength[rows, slots],
    }


def _write(store: MemoryStore, cols: dict[str, np.ndarray], factory: RecordFactory) -> None:
    for lo in range(0, len(cols["user"]), _BATCH):
        part = {k: v[lo : lo + _BATCH] for k, v in cols.items()}
        reasons = part["reason"]
        metadatas = [
            {
                "user_id": str(u),
                "item_id": factory.item_ids[i],
                "polarity": "like" if p > 0 else "dislike",
                "category": factory.item_categories[i],
                "step": 0,
                "strength": float(s),
                "last_step": 0,
            }
            for u, i, p, s in zip(part["user"], part["item"], part["polarity"], part["strength"], strict=True)
        ]
        ids = [seed_record_id(str(u), int(r), int(p)) for u, r, p in zip(part["user"], reasons, part["polarity"],
                                                                           strict=True)]  # fmt: skip
        store.add(ids, factory.reason_vectors[reasons], [factory.reason_texts[r] for r in reasons], metadatas)


def ensure_seed_store(spec: SeedSpec, user_ids: np.ndarray, memory: WorkingMemory, factory: RecordFactory) -> int:
    """Build the seed store of ``spec`` unless it is already complete; returns the records written (0 if reused).

    Args:
        spec: Where the store lives (its key names its content: :func:`seed_key`).
        user_ids: The real users, one per row of ``memory``.
        memory: Each user's seeded working memory.
        factory: Reason texts and vectors, item ids and categories.

    An embedded store is built in a folder of its own and renamed into place, so runs starting together never
    see half a store; on a server, writes are upserts of fixed ids (two runs writing at once write the same
    records), and the collection is marked complete at the end.
    """
    cols = _columns(user_ids, memory)
    if spec.server is not None:
        store = spec.open()
        if (store.metadata() or {}).get(_DONE):
            return 0
        _write(store, cols, factory)
        store.mark({_DONE: True})
        return len(cols["user"])
    assert spec.path is not None
    if (spec.path / _DONE).exists():
        return 0
    building = spec.path.with_name(f".{spec.path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        store = open_store(building, spec.collection)
        _write(store, cols, factory)
        store.close()
        (building / _DONE).write_text(json.dumps({"records": len(cols["user"])}) + "\n", encoding="utf-8")
        spec.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(building, spec.path)
        except OSError:  # another run finished the same store first (or left an unfinished one: replace it)
            if (spec.path / _DONE).exists():
                return 0
            shutil.rmtree(spec.path, ignore_errors=True)
            os.rename(building, spec.path)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return len(cols["user"])
