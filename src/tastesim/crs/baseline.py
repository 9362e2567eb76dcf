"""The built-in baseline CRS: embedding retrieval over the catalog using the conversation so far.

Each item is embedded once from its categories and like reasons. A request's query vector is the sum of
its user turns' embeddings, the latest weighing most (halving per earlier turn); items shown earlier in the
conversation are never shown again. Served over HTTP by :mod:`tastesim.crs.server`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tastesim.catalog.profile import ItemProfile
from tastesim.crs.protocol import CRSReply, Message

__all__ = ["BaselineCRS", "item_texts"]

Embed = Callable[[Sequence[str]], np.ndarray]
_QUERY_CACHE = 20_000  # distinct user-turn texts whose embeddings are kept


def item_texts(profiles: Sequence[ItemProfile]) -> list[str]:
    """What the baseline knows of each item: its categories and like reasons (never its title)."""
    return [f"{', '.join(p.categories)}. " + ". ".join(r.text for r in p.like) for p in profiles]


@dataclass
class BaselineCRS:
    """Retrieval by cosine between the conversation and the item texts; safe to call from several threads.

    Attributes:
        item_ids: Catalog item ids, in row order of ``item_vectors``.
        item_vectors: Unit item embeddings ``(n_items, d)``.
        embed: Embeds query texts (unit rows); called under a lock, results cached.
    """

    item_ids: list[str]
    item_vectors: np.ndarray
    embed: Embed

    def __post_init__(self) -> None:
        self._lock = threading.Lock()  # held while embedding; guards the cache
        self._waiting_lock = threading.Lock()
        self._waiting: set[str] = set()
        self._cache: dict[str, np.ndarray] = {}
        self._row = {item: i for i, item in enumerate(self.item_ids)}

    def _vectors(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts``; requests that wait for the lock are embedded together in one batch."""
        with self._waiting_lock:
            self._waiting.update(texts)
        with self._lock:
            with self._waiting_lock:
                pending = self._waiting | set(texts)
                self._waiting.clear()
            if len(self._cache) + len(pending) > _QUERY_CACHE:
                self._cache.clear()
            missing = sorted(t for t in pending if t not in self._cache)
            if missing:
                self._cache.update(zip(missing, self.embed(missing), strict=True))
            return np.stack([self._cache[t] for t in texts])

    def recommend(self, messages: Sequence[Message], k: int) -> CRSReply:
        """Items for the conversation ``messages`` (the last one is the user's turn).

        Raises:
            ValueError: When no user turn has text.
        """
        said = [m.content for m in messages if m.role == "user" and m.content.strip()]
        if not said:
            raise ValueError("the conversation has no user text")
        weights = 0.5 ** np.arange(len(said))[::-1]
        query = (weights[:, None] * self._vectors(said)).sum(axis=0)
        scores = self.item_vectors @ query
        shown = [self._row[i] for m in messages for i in m.items if i in self._row]
        scores[shown] = -np.inf
        k = min(k, int(np.isfinite(scores).sum()))
        best = np.argsort(-scores, kind="stable")[:k]
        question = None if len(said) > 1 else "Is there a mood or a kind of story you want more of?"
        items = tuple(self.item_ids[i] for i in best)
        return CRSReply(items=items, text="Here are some picks for you.", question=question)
