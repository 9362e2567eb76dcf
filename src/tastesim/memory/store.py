"""Long-term reason memory on ChromaDB: one collection per run, one record per (agent, reason, polarity).

Record id ``a{agent}-r{reason}-{L|D}``; document = reason text; embedding = the reason's MiniLM vector
(always passed explicitly: Chroma's default embedding function downloads a model); metadata
``{agent_id, item_id, polarity, category, step, strength, last_step}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MemoryRecord", "MemoryStore", "StoreSpec", "open_store", "record_id"]

# Cheaper HNSW construction than Chroma's default (measured here: ~2x faster inserts); recall by agent
# filter stays exact with a wide search (ef_search), which costs ~ms per query.
_HNSW = {"space": "cosine", "ef_construction": 32, "max_neighbors": 8, "ef_search": 400}


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
            collection, configuration={"hnsw": _HNSW}, embedding_function=None
        )

    def count(self) -> int:
        """Number of records."""
        return self._collection.count()

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
        write(ids=list(ids), embeddings=vectors, documents=list(texts), metadatas=list(metadatas))

    def ids(self) -> list[str]:
        """Every record id."""
        return self._collection.get(include=[])["ids"]

    def update(self, ids: Sequence[str], metadatas: Sequence[dict]) -> None:
        """Update metadata of existing records (strength, last step)."""
        self._collection.update(ids=list(ids), metadatas=list(metadatas))

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
        self, agent_id: int | None = None, polarity: str | None = None, limit: int | None = None
    ) -> list[MemoryRecord]:
        """Records matching the filters, without similarity ranking."""
        result = self._collection.get(
            where=_where(agent_id, polarity, None), limit=limit, include=["documents", "metadatas"]
        )
        return [
            _record(i, d, m) for i, d, m in zip(result["ids"], result["documents"], result["metadatas"], strict=True)
        ]

    def recall(
        self,
        query: np.ndarray,
        agent_id: int,
        k: int = 5,
        polarity: str | None = None,
        category: str | None = None,
    ) -> list[MemoryRecord]:
        """The ``k`` memories of ``agent_id`` closest to ``query``, optionally filtered by polarity/category."""
        result = self._collection.query(
            query_embeddings=np.asarray(query, dtype=np.float32).reshape(1, -1),
            n_results=k,
            where=_where(agent_id, polarity, category),
            include=["documents", "metadatas", "distances"],
        )
        return [
            _record(i, d, m, dist)
            for i, d, m, dist in zip(
                result["ids"][0], result["documents"][0], result["metadatas"][0], result["distances"][0], strict=True
            )
        ]


def _where(agent_id: int | None, polarity: str | None, category: str | None) -> dict | None:
    clauses = [
        {key: value}
        for key, value in (("agent_id", agent_id), ("polarity", polarity), ("category", category))
        if value is not None
    ]
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _record(rid: str, text: str, meta: dict, distance: float | None = None) -> MemoryRecord:
    return MemoryRecord(
        rid,
        text,
        int(meta["agent_id"]),
        str(meta["item_id"]),
        str(meta["polarity"]),
        str(meta["category"]),
        int(meta["step"]),
        float(meta["strength"]),
        int(meta["last_step"]),
        distance,
    )


@dataclass(frozen=True)
class StoreSpec:
    """Where a run's store lives (picklable, so a writer process can open the same store)."""

    path: Path | None
    collection: str
    server: str | None = None

    def open(self) -> MemoryStore:
        """Open the store."""
        return open_store(self.path, self.collection, self.server)


def open_store(path: Path | None, collection: str, server: str | None = None) -> MemoryStore:
    """Open the run's store: embedded at ``path``, or on a Chroma server ``http://host:port``."""
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
