"""Read a run's long-term memory: which record holds each remembered reason, and what it says now.

A run's memory lives in three places (see README "How it works"):

1. the **run store** (``memory/`` or ``memory/shard-K``, or collections on a server): one record per memory
   the run formed, id ``a{agent}-r{reason}-{L|D}``, written once;
2. the **seed store** (:mod:`tastesim.memory.seed`): one record per (real user, reason, polarity) of the
   seeded memories, id ``u{user}-r{reason}-{L|D}``, shared by every agent of that user and every run;
3. the **strength log** (:mod:`tastesim.memory.strengths`): the latest strength of memories whose strength
   changed after their record was written.

The memory (agent, reason, polarity) is held by the run store's record ``a{agent}-r{reason}-{P}`` when it
exists (the agent formed it during the run, possibly again after forgetting a seeded one), else by the seed
store's record ``u{user}-r{reason}-{P}`` of the agent's real user; its strength is its latest logged one, else
the record's own. :meth:`MemoryView.locate` answers the first question, :meth:`MemoryView.get` and
:meth:`MemoryView.recall` read memories resolved this way, as ``MemoryStore`` reads one collection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from tastesim.memory.seed import seed_record_id
from tastesim.memory.store import MemoryRecord, MemoryStore, ShardedStore, StoreSpec, record_id
from tastesim.memory.strengths import StrengthLog, Strengths, memory_key
from tastesim.paths import atomic_write

__all__ = [
    "AGENTS_FILE",
    "STRENGTHS_FOLDER",
    "AgentUsers",
    "MemoryView",
    "RecordLocation",
    "open_view",
    "parse_record_id",
]

_ID = re.compile(r"^([au])(.*)-r(\d+)-([LD])$")


def parse_record_id(rid: str) -> tuple[str, str, int, int]:
    """``(kind, owner, reason, polarity)`` of a record id: kind ``a`` (agent) or ``u`` (a seed's user)."""
    match = _ID.match(rid)
    if match is None:
        raise ValueError(f"not a memory record id: {rid!r}")
    kind, owner, reason, pol = match.groups()
    return kind, owner, int(reason), 1 if pol == "L" else -1


@dataclass(frozen=True)
class AgentUsers:
    """The real user of each agent: ``user_ids[user_rows[agent]]`` (``memory-index/agents.npz`` of a run)."""

    user_rows: np.ndarray
    user_ids: np.ndarray

    def user_of(self, agent: int) -> str:
        """The real user id of ``agent``."""
        return str(self.user_ids[self.user_rows[agent]])

    def save(self, path: Path) -> None:
        """Write to ``path`` (``.npz``)."""
        ids = np.asarray(self.user_ids, dtype=str)
        atomic_write(path, lambda tmp: np.savez(tmp, user_rows=self.user_rows, user_ids=ids))

    @staticmethod
    def load(path: Path) -> AgentUsers:
        """Inverse of :meth:`save`."""
        with np.load(path) as data:
            return AgentUsers(data["user_rows"], data["user_ids"])


@dataclass(frozen=True)
class RecordLocation:
    """The record holding one memory: which store (``run`` or ``seed``), its shard (run store) and its id."""

    store: Literal["run", "seed"]
    collection: str
    id: str
    shard: int | None = None


class MemoryView:
    """A run's memories resolved through the run store, then the seed store, with logged strengths.

    Args:
        run: The run store (one collection, or its shards).
        seed: The seed store, or ``None`` when the run store holds every memory.
        agents: The real user of each agent (needed with a seed store).
        log: The run's strength log, or ``None``.
    """

    def __init__(
        self,
        run: MemoryStore | ShardedStore,
        seed: MemoryStore | None = None,
        agents: AgentUsers | None = None,
        log: StrengthLog | None = None,
    ) -> None:
        if seed is not None and agents is None:
            raise ValueError("a view with a seed store needs the agents' users")
        self.run = run
        self.seed = seed
        self.agents = agents
        self.log = log
        self._strengths: Strengths | None = None

    # -- where a memory is ---------------------------------------------------------------------------
    def _shard_of(self, agent: int) -> tuple[MemoryStore, int | None]:
        if isinstance(self.run, ShardedStore):
            k = agent % len(self.run.shards)
            return self.run.shards[k], k
        return self.run, None

    def locate(self, agent: int, reason: int, polarity: int) -> RecordLocation | None:
        """The record holding the memory (agent, reason, polarity): run store first, then the seed store;
        ``None`` when the agent never held it."""
        store, shard = self._shard_of(agent)
        rid = record_id(agent, reason, polarity)
        if store.has(rid):
            return RecordLocation("run", store.collection_name, rid, shard)
        if self.seed is not None and self.agents is not None:
            sid = seed_record_id(self.agents.user_of(agent), reason, polarity)
            if self.seed.has(sid):
                return RecordLocation("seed", self.seed.collection_name, sid)
        return None

    def read(self, location: RecordLocation) -> tuple[MemoryRecord, np.ndarray]:
        """The record at ``location`` (as stored: a seed record keeps its user's id) and its embedding."""
        if location.store == "seed":
            assert self.seed is not None
            store = self.seed
        else:
            store = self.run.shards[location.shard or 0] if isinstance(self.run, ShardedStore) else self.run
        records, vectors = store.by_ids([location.id])
        return records[0], vectors[0]

    # -- reading -------------------------------------------------------------------------------------
    def strengths(self) -> Strengths:
        """The latest logged strengths (read once)."""
        if self._strengths is None:
            empty = np.zeros(0, dtype=np.int64)
            self._strengths = self.log.latest() if self.log else Strengths(empty, np.zeros(0), empty)
        return self._strengths

    def _resolved(
        self, agent: int, polarity: str | None, vectors: bool
    ) -> tuple[list[MemoryRecord], np.ndarray | None]:
        store, _ = self._shard_of(agent)
        if vectors:
            records, vecs = store.get_vectors(agent_id=agent, polarity=polarity)
        else:
            records, vecs = store.get(agent_id=agent, polarity=polarity), None
        if self.seed is not None and self.agents is not None:
            own = {r.id for r in records}
            user = self.agents.user_of(agent)
            if vectors:
                seeds, seed_vecs = self.seed.get_vectors(user_id=user, polarity=polarity)
            else:
                seeds, seed_vecs = self.seed.get(user_id=user, polarity=polarity), None
            keep = []
            for i, record in enumerate(seeds):
                _, _, reason, pol = parse_record_id(record.id)
                rid = record_id(agent, reason, pol)
                if rid not in own:
                    keep.append(i)
                    records.append(replace(record, id=rid, agent_id=agent))
            if vectors and keep:
                vecs = np.concatenate([vecs, seed_vecs[keep]]) if vecs is not None and len(vecs) else seed_vecs[keep]
        return self._with_strengths(records), vecs

    def _with_strengths(self, records: list[MemoryRecord]) -> list[MemoryRecord]:
        if not records:
            return records
        parsed = [parse_record_id(r.id) for r in records]
        keys = memory_key(
            np.array([r.agent_id for r in records]), np.array([p[2] for p in parsed]), np.array([p[3] for p in parsed])
        )
        found, strength, last = self.strengths().lookup(keys)
        return [
            replace(r, strength=float(s), last_step=int(t)) if f else r
            for r, f, s, t in zip(records, found, strength, last, strict=True)
        ]

    def get(
        self, agent_id: int | None = None, polarity: str | None = None, limit: int | None = None
    ) -> list[MemoryRecord]:
        """The memories matching the filters (every agent's when ``agent_id`` is ``None``: a small run's)."""
        if agent_id is not None:
            records = self._resolved(agent_id, polarity, vectors=False)[0]
            return records if limit is None else records[:limit]
        records = self._all(polarity)
        return records if limit is None else records[:limit]

    def _all(self, polarity: str | None) -> list[MemoryRecord]:
        records = self.run.get(polarity=polarity)
        if self.seed is None or self.agents is None:
            return self._with_strengths(records)
        own = {r.id for r in records}
        by_user: dict[str, list[MemoryRecord]] = {}
        for record in self.seed.get(polarity=polarity):
            _, user, _, _ = parse_record_id(record.id)
            by_user.setdefault(user, []).append(record)
        for agent in range(len(self.agents.user_rows)):
            for record in by_user.get(self.agents.user_of(agent), []):
                _, _, reason, pol = parse_record_id(record.id)
                rid = record_id(agent, reason, pol)
                if rid not in own:
                    records.append(replace(record, id=rid, agent_id=agent))
        return self._with_strengths(records)

    def ids(self) -> list[str]:
        """Every memory's id (as :func:`record_id` names it)."""
        return [r.id for r in self._all(None)]

    def count(self) -> int:
        """Number of memories (run records, plus seeded memories the run did not form again)."""
        if self.seed is None or self.agents is None:
            return self.run.count()
        run_ids = self.run.ids()
        seed_ids = self.seed.ids()
        per_user: dict[str, set[tuple[int, int]]] = {}
        for sid in seed_ids:
            _, user, reason, pol = parse_record_id(sid)
            per_user.setdefault(user, set()).add((reason, pol))
        counts = np.array([len(per_user.get(str(u), ())) for u in self.agents.user_ids])
        total = len(run_ids) + int(counts[self.agents.user_rows].sum())
        for rid in run_ids:
            _, agent, reason, pol = parse_record_id(rid)
            if (reason, pol) in per_user.get(self.agents.user_of(int(agent)), ()):
                total -= 1  # formed again in the run: its run record replaces the seed record
        return total

    def recall(
        self,
        query: np.ndarray,
        agent_id: int,
        k: int = 5,
        polarity: str | None = None,
        category: str | None = None,
    ) -> list[MemoryRecord]:
        """The agent's ``k`` memories closest to ``query`` (cosine), as :meth:`MemoryStore.recall` ranks them."""
        records, vectors = self._resolved(agent_id, polarity, vectors=True)
        if category is not None:
            keep = [i for i, r in enumerate(records) if r.category == category]
            records = [records[i] for i in keep]
            vectors = vectors[keep] if vectors is not None and keep else None
        if not records or vectors is None:
            return []
        probe = np.asarray(query, dtype=np.float32).ravel()
        norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(probe)
        distances = 1.0 - (vectors @ probe) / np.maximum(norms, 1e-12)
        order = np.argsort(distances, kind="stable")[:k]
        return [replace(records[i], distance=float(distances[i])) for i in order]


AGENTS_FILE = "agents.npz"
STRENGTHS_FOLDER = "strengths"


def open_view(spec: StoreSpec) -> MemoryView:
    """The memories of the run store of ``spec``, its seed store, and the strength log in ``spec.index``."""
    agents = None
    if spec.index is not None and (spec.index / AGENTS_FILE).exists():
        agents = AgentUsers.load(spec.index / AGENTS_FILE)
    seed = spec.seed.open() if spec.seed is not None and agents is not None else None
    log = StrengthLog(spec.index / STRENGTHS_FOLDER) if spec.index is not None else None
    return MemoryView(spec.open_run_store(), seed, agents, log)
