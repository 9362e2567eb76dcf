"""Dense, index-based views of the catalog's profiles that the batched scorer gathers from.

Reasons come from a catalog-wide vocabulary, so everything the scorer needs per (agent, item) pair is a
gather from small tables: reason keywords, reason-to-reason cosine similarity, item reason lists and
category bit masks. Nothing on the decision path touches text or Chroma.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tastesim.catalog.profile import ItemProfile

__all__ = ["MAX_KEYWORDS", "CatalogTables", "ReasonBank", "category_bits"]

MAX_KEYWORDS = 3  # keywords per reason


@dataclass(frozen=True)
class ReasonBank:
    """Every distinct reason text of the catalog, with keyword ids and unit embeddings."""

    texts: list[str]
    keywords: np.ndarray  # (R, MAX_KEYWORDS) int32, -1 = none
    vectors: np.ndarray  # (R, d) float32, unit rows
    keyword_vocab: list[str]

    @property
    def similarity(self) -> np.ndarray:
        """Reason-by-reason cosine similarity, float32 (R, R); computed once."""
        cached = self.__dict__.get("_similarity")
        if cached is None:
            cached = (self.vectors @ self.vectors.T).astype(np.float32)
            object.__setattr__(self, "_similarity", cached)
        return cached


_MAX_ITEM_KEYWORDS = 16  # keyword hits are bit sets in a uint16


def keyword_hit_bits(item_keywords: np.ndarray, reason_keywords: np.ndarray, n_keywords: int) -> np.ndarray:
    """``bits[i, r]``: bit ``j`` set when item ``i``'s keyword ``j`` is one of reason ``r``'s keywords.

    Args:
        item_keywords: ``(I, K)`` keyword ids per item, ``-1`` padded, ``K <= 16``.
        reason_keywords: ``(R, MAX_KEYWORDS)`` keyword ids per reason, ``-1`` padded.
        n_keywords: Size of the keyword vocabulary.
    """
    n_reasons = reason_keywords.shape[0]
    incidence = np.zeros((n_keywords + 1, n_reasons), dtype=bool)  # last row: the padding id
    rows, cols = np.nonzero(reason_keywords >= 0)
    incidence[reason_keywords[rows, cols], rows] = True
    bits = np.zeros((item_keywords.shape[0], n_reasons), dtype=np.uint16)
    for j in range(min(item_keywords.shape[1], _MAX_ITEM_KEYWORDS)):
        column = np.where(item_keywords[:, j] >= 0, item_keywords[:, j], n_keywords)
        bits |= incidence[column].astype(np.uint16) << np.uint16(j)
    return bits


def category_bits(categories: Sequence[str], vocab: dict[str, int]) -> int:
    """Bit mask of categories; vocabularies over 63 categories fold (a collision only widens scope)."""
    mask = 0
    for c in categories:
        mask |= 1 << (vocab[c] % 63)
    return mask


@dataclass(frozen=True)
class CatalogTables:
    """Per-item arrays indexed by item row."""

    like: np.ndarray  # (I, L) reason ids, -1 pad
    dislike: np.ndarray  # (I, D) reason ids, -1 pad
    like_keywords: np.ndarray  # (I, KL) distinct keyword ids, -1 pad
    dislike_keywords: np.ndarray  # (I, KD)
    category_mask: np.ndarray  # (I,) int64
    primary: np.ndarray  # (I,) int32 index into ``categories``
    categories: list[str]

    def hit_bits(self, bank: ReasonBank) -> tuple[np.ndarray, np.ndarray]:
        """Like and dislike keyword-hit bit tables ``(I, R)`` (see :func:`keyword_hit_bits`); computed once."""
        cached = self.__dict__.get("_hit_bits")
        if cached is None:
            n = len(bank.keyword_vocab)
            cached = (
                keyword_hit_bits(self.like_keywords, bank.keywords, n),
                keyword_hit_bits(self.dislike_keywords, bank.keywords, n),
            )
            object.__setattr__(self, "_hit_bits", cached)
        return cached

    @staticmethod
    def build(profiles: Sequence[ItemProfile], embed) -> tuple[CatalogTables, ReasonBank]:
        """Index ``profiles`` (in item row order); ``embed(texts) -> (n, d)`` gives reason vectors."""
        texts: dict[str, int] = {}
        kw_vocab: dict[str, int] = {}
        reason_keywords: list[list[int]] = []

        def reason_id(text: str, keywords: Sequence[str]) -> int:
            if text not in texts:
                texts[text] = len(texts)
                reason_keywords.append([kw_vocab.setdefault(k, len(kw_vocab)) for k in keywords[:MAX_KEYWORDS]])
            return texts[text]

        like = [[reason_id(r.text, r.keywords) for r in p.like] for p in profiles]
        dislike = [[reason_id(r.text, r.keywords) for r in p.dislike] for p in profiles]
        categories = sorted({c for p in profiles for c in p.categories})
        cat_index = {c: i for i, c in enumerate(categories)}

        def item_keywords(reason_lists: list[list[int]]) -> list[list[int]]:
            return [
                sorted({k for r in reasons for k in reason_keywords[r]})[:_MAX_ITEM_KEYWORDS]
                for reasons in reason_lists
            ]

        tables = CatalogTables(
            like=_pad(like),
            dislike=_pad(dislike),
            like_keywords=_pad(item_keywords(like)),
            dislike_keywords=_pad(item_keywords(dislike)),
            category_mask=np.array([category_bits(p.categories, cat_index) for p in profiles], dtype=np.int64),
            primary=np.array([cat_index[p.category] for p in profiles], dtype=np.int32),
            categories=categories,
        )
        reason_texts = list(texts)
        bank = ReasonBank(
            texts=reason_texts,
            keywords=_pad(reason_keywords, width=MAX_KEYWORDS),
            vectors=np.asarray(embed(reason_texts), dtype=np.float32),
            keyword_vocab=list(kw_vocab),
        )
        return tables, bank


def _pad(rows: list[list[int]], width: int | None = None) -> np.ndarray:
    width = width if width is not None else max((len(r) for r in rows), default=1) or 1
    out = np.full((len(rows), width), -1, dtype=np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row[:width]
    return out
