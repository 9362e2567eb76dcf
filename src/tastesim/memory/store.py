"""Long-term reason memory on ChromaDB: one collection per run (or per shard), one record per remembered reason.

Record id ``a{agent}-r{reason}-{L|D}``; embedding = the reason's MiniLM vector (always passed
explicitly: Chroma's default embedding function downloads a model); metadata
``{text, agent_id, item_id, polarity, category, step, strength, last_step}``.

The reason text is a metadata field, not a Chroma document: documents feed Chroma's full-text index,
which cost ~12-24 % of the embedded write rate here (``bench/chroma_write_cost.py``), and memories are
recalled by embedding and metadata filters, never by full-text search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tastesim.memory.seed import SeedSpec
    from tastesim.memory.view import MemoryView

__all__ = ["HNSW", "MemoryRecord", "MemoryStore", "ShardedStore", "StoreSpec", "open_store", "record_id", "shard_of"]

# Cheaper HNSW construction than Chroma's default (measured here: ~2x faster inserts). Recall does not rely
# on it (see MemoryStore.recall); ef_search is wide for anyone querying the collection directly.
HNSW = {"space": "cosine", "ef_construction": 32, "max_neighbors": 8, "ef_search": 400}


def shard_of(agent: Any, shards: int) -> Any:
    """The shard holding an agent's memories: ``agent % shards`` (an id, or an array of ids)."""
    return agent % shards


def record_id(agent: int, reason: int, polarity: int) -> str:
    """Stable id of one remembered reason."""
    return f"a{agent}-r{reason}-{'L' if polarity > 0 else 'D'}"


@dataclass(frozen=True)
class MemoryRecord:
    """One record read back from the store."""

    id: str
    text: str
    agent_id: int
    item_id: str
    polarity: str
    category: str
    step: int
    strength: float
    last_step: int
    distance: float | None = None


class MemoryStore:
    """A Chroma collection of reason memories (embedded PersistentClient or HttpClient)."""

    def __init__(self, client: Any, collection: str) -> None:
        self._client = client
        self.collection_name = collection
        self._collection = client.get_or_create_collection(
            collection, configuration={"hnsw": HNSW}, embedding_function=None
        )

    def count(self, where: dict | None = None) -> int:
        """Number of records (matching the metadata filter ``where``, when given)."""
        if where is None:
            return self._collection.count()
        return len(self._collection.get(where=where, include=[])["ids"])

    def add(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        texts: Sequence[str],
        metadatas: Sequence[dict],
        overwrite: bool = True,
    ) -> None:
        """Insert records; with ``overwrite`` (upsert) existing ids are replaced, else they must be new.

        Plain inserts are ~15 % faster in embedded Chroma, so writers that know an id is new say so.
        """
        write = self._collection.upsert if overwrite else self._collection.add
        metadatas = [{"text": text, **meta} for text, meta in zip(texts, metadatas, strict=True)]
        write(ids=list(ids), embeddings=vectors, metadatas=metadatas)

    def ids(self) -> list[str]:
        """Every record id."""
        return self._collection.get(include=[])["ids"]

    def has(self, rid: str) -> bool:
        """Whether the record ``rid`` exists."""
        return bool(self._collection.get(ids=[rid], include=[])["ids"])

    def by_ids(self, ids: Sequence[str]) -> tuple[list[MemoryRecord], np.ndarray]:
        """The records ``ids`` (those that exist) and their embeddings."""
        got = self._collection.get(ids=list(ids), include=["metadatas", "embeddings"])
        records = [_record(i, m) for i, m in zip(got["ids"], got["metadatas"], strict=True)]
        return records, np.asarray(got["embeddings"], dtype=np.float32) if records else np.zeros((0, 0), np.float32)

    def update(self, ids: Sequence[str], metadatas: Sequence[dict]) -> None:
        """Update metadata of existing records (strength, last step)."""
        self._collection.update(ids=list(ids), metadatas=list(metadatas))

    def metadata(self) -> dict | None:
        """The collection's own metadata (``None`` when it has none)."""
        return self._client.get_collection(self.collection_name).metadata

    def mark(self, metadata: dict) -> None:
        """Set the collection's own metadata (e.g. that a seed store is complete)."""
        self._collection.modify(metadata=metadata)

    def close(self) -> None:
        """Release the client (an embedded store's folder is free to move afterwards)."""
        close = getattr(self._client, "close", None)
        if close is not None:
            close()

    def drop(self) -> None:
        """Delete the whole collection (a run restarting from scratch)."""
        self._client.delete_collection(self.collection_name)

    def delete_after(self, step: int) -> None:
        """Delete records created after ``step`` (used when resuming from a checkpoint)."""
        self._collection.delete(where={"step": {"$gt": step}})

    def ids_touched_after(self, step: int) -> list[str]:
        """Ids of records whose strength changed after ``step``."""
        return self._collection.get(where={"last_step": {"$gt": step}}, include=[])["ids"]

    def get(
        self,
        agent_id: int | None = None,
        polarity: str | None = None,
        limit: int | None = None,
        *,
        user_id: str | None = None,
    ) -> list[MemoryRecord]:
        """Records matching the filters, without similarity ranking (``user_id``: a seed store's records)."""
        where = _where(agent_id, polarity, None, user_id)
        result = self._collection.get(where=where, limit=limit, include=["metadatas"])
        return [_record(i, m) for i, m in zip(result["ids"], result["metadatas"], strict=True)]

    def get_vectors(
        self, agent_id: int | None = None, polarity: str | None = None, *, user_id: str | None = None
    ) -> tuple[list[MemoryRecord], np.ndarray]:
        """Records matching the filters with their embeddings ``(n, d)``."""
        result = self._collection.get(
            where=_where(agent_id, polarity, None, user_id), include=["metadatas", "embeddings"]
        )
        records = [_record(i, m) for i, m in zip(result["ids"], result["metadatas"], strict=True)]
        vectors = np.asarray(result["embeddings"], dtype=np.float32) if records else np.zeros((0, 0), np.float32)
        return records, vectors

    def recall(
        self,
        query: np.ndarray,
        agent_id: int,
        k: int = 5,
        polarity: str | None = None,
        category: str | None = None,
    ) -> list[MemoryRecord]:
        """The ``k`` memories of ``agent_id`` closest to ``query`` (cosine), optionally filtered by polarity/category.

        Ranked exactly over the agent's filtered records, which number tens: Chroma's filtered HNSW search
        on the write-optimised graph (``HNSW``) can miss a record, even one equal to the query.
        """
        result = self._collection.get(where=_where(agent_id, polarity, category), include=["metadatas", "embeddings"])
        if not result["ids"]:
            return []
        vectors = np.asarray(result["embeddings"], dtype=np.float32)
        probe = np.asarray(query, dtype=np.float32).ravel()
        norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(probe)
        distances = 1.0 - (vectors @ probe) / np.maximum(norms, 1e-12)
        order = np.argsort(distances, kind="stable")[:k]
        return [_record(result["ids"][i], result["metadatas"][i], float(distances[i])) for i in order]


def _where(agent_id: int | None, polarity: str | None, category: str | None, user_id: str | None = None) -> dict | None:
    pairs = (("agent_id", agent_id), ("user_id", user_id), ("polarity", polarity), ("category", category))
    clauses = [{key: value} for key, value in pairs if value is not None]
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _record(rid: str, meta: dict, distance: float | None = None) -> MemoryRecord:
    return MemoryRecord(
        rid,
        str(meta["text"]),
        int(meta.get("agent_id", -1)),  # a seed store's records belong to a user (``user_id``)
        str(meta["item_id"]),
        str(meta["polarity"]),
        str(meta["category"]),
        int(meta["step"]),
        float(meta["strength"]),
        int(meta["last_step"]),
        distance,
    )


class ShardedStore:
    """Read access to a store split into shards by :func:`shard_of` (one writer process each)."""

    def __init__(self, shards: list[MemoryStore]) -> None:
        self.shards = shards

    def _of(self, agent_id: int) -> MemoryStore:
        return self.shards[shard_of(agent_id, len(self.shards))]

    def count(self) -> int:
        """Number of records in all shards."""
        return sum(shard.count() for shard in self.shards)

    def ids(self) -> list[str]:
        """Every record id."""
        return [rid for shard in self.shards for rid in shard.ids()]

    def get(
        self, agent_id: int | None = None, polarity: str | None = None, limit: int | None = None
    ) -> list[MemoryRecord]:
        """Records matching the filters (see :meth:`MemoryStore.get`)."""
        if agent_id is not None:
            return self._of(agent_id).get(agent_id, polarity, limit)
        records = [r for shard in self.shards for r in shard.get(None, polarity, limit)]
        return records if limit is None else records[:limit]

    def recall(
        self,
        query: np.ndarray,
        agent_id: int,
        k: int = 5,
        polarity: str | None = None,
        category: str | None = None,
    ) -> list[MemoryRecord]:
        """The agent's ``k`` closest memories (see :meth:`MemoryStore.recall`)."""
        return self._of(agent_id).recall(query, agent_id, k, polarity, category)


@dataclass(frozen=True)
class StoreSpec:
    """Where a run's store lives (picklable, so writer processes can open it).

    With ``shards`` > 1 the store is split by :func:`shard_of`, each shard written by its own
    process: embedded shards live in ``path/shard-K``, shards on a server in collections ``NAME-shard-K``.
    A run's store may stand on a seed store (``seed``, the seeded memories shared by every run) and keep a
    strength log and the agents' users in ``index`` (see :mod:`tastesim.memory.view`); :meth:`open` then
    reads memories resolved through all of them.
    """

    path: Path | None
    collection: str
    server: str | None = None
    shards: int = 1
    seed: SeedSpec | None = None
    index: Path | None = None

    def parts(self) -> list[StoreSpec]:
        """One single-shard spec per shard of the run store (this spec, without seed and index, when unsharded)."""
        if self.shards == 1:
            return [StoreSpec(self.path, self.collection, self.server)]
        return [
            StoreSpec(
                None if self.path is None else self.path / f"shard-{k}",
                self.collection if self.server is None else f"{self.collection}-shard-{k}",
                self.server,
            )
            for k in range(self.shards)
        ]

    def where(self) -> str:
        """Where the store lives, for messages: ``collection NAME in PATH`` or ``collection NAME on URL``."""
        return f"collection {self.collection} " + (f"on {self.server}" if self.server else f"in {self.path}")

    def open_run_store(self) -> MemoryStore | ShardedStore:
        """The run store alone (a :class:`ShardedStore` view when sharded)."""
        if self.shards == 1:
            return open_store(self.path, self.collection, self.server)
        return ShardedStore([open_store(p.path, p.collection, p.server) for p in self.parts()])

    def open(self) -> MemoryStore | ShardedStore | MemoryView:
        """Open the store: the run store, or with a seed store or index, a :class:`MemoryView` over them."""
        if self.seed is None and self.index is None:
            return self.open_run_store()
        from tastesim.memory.view import open_view  # the view reads this module's stores

        return open_view(self)


def open_store(path: Path | None, collection: str, server: str | None = None) -> MemoryStore:
    """Open one collection: embedded at ``path``, or on a Chroma server ``http://host:port``."""
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if server:
        from urllib.parse import urlparse

        url = urlparse(server)
        client = chromadb.HttpClient(
            host=url.hostname or "localhost", port=url.port or 8000, ssl=url.scheme == "https", settings=settings
        )
    else:
        if path is None:
            raise ValueError("an embedded memory store needs a path")
        client = chromadb.PersistentClient(path=str(path), settings=settings)
    return MemoryStore(client, collection)
