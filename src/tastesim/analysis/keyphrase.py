"""The offline analyser: item profiles from text and categories, with no LLM.

How reasons are obtained (deterministic for a given catalog and embedding model):

* **Like reasons**: (1) up to two *content keyphrases* of the item: 1-2 word phrases of its text (split at
  stop words and punctuation) that occur in at least ``min_df`` and at most ``max_df`` of the catalog's
  items (catalog-wide filtering, as the method filters keywords), ranked by embedding similarity to the
  item's text with maximal-marginal-relevance for variety; (2) the best *like aspect* from
  :data:`~tastesim.analysis.aspects.LIKE_ASPECTS`, ranked by similarity to the item's text plus a bonus
  when the aspect is typical of one of the item's categories.
* **Dislike reasons**: the top ``n_dislike`` *dislike aspects* from
  :data:`~tastesim.analysis.aspects.DISLIKE_ASPECTS`, ranked the same way. Item texts describe what an item
  is, not what its critics say, so dislike reasons come from a fixed list of common complaints; the
  item's categories and text decide which complaints apply.

Reasons are drawn from a catalog-wide vocabulary on purpose: memories then repeat across items, so an
agent's memory consolidates into a few strong reasons instead of one record per item.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from tastesim.analysis.aspects import DISLIKE_ASPECTS, LIKE_ASPECTS, Aspect
from tastesim.catalog.profile import ItemProfile, Reason
from tastesim.data.dataset import Dataset
from tastesim.embedding import Embedder
from tastesim.text import STOP_WORDS, normalise_keyword, tokenise

__all__ = ["KeyphraseAnalyser", "KeyphraseSettings"]

ANALYSER_VERSION = "keyphrase-v1"


@dataclass(frozen=True)
class KeyphraseSettings:
    """Tunables of the offline analyser (all part of the cache key)."""

    n_content: int = 2
    n_dislike: int = 3
    min_df: int = 3
    max_df: float = 0.05
    category_bonus: float = 0.15
    diversity: float = 0.3


def _proper_nouns(texts: Sequence[str]) -> frozenset[str]:
    """Words that never appear in lower case anywhere in the catalog (names of people and places)."""
    lower, capital = set(), set()
    for text in texts:
        for word in re.findall(r"[A-Za-z][\w'\-]*", text):
            (capital if word[0].isupper() else lower).add(word.lower())
    return frozenset(capital - lower)


def _phrases(text: str, skip: frozenset[str]) -> list[str]:
    """Unigrams and bigrams of content words, never spanning a stop word or a proper noun."""
    runs: list[list[str]] = [[]]
    for token in tokenise(text):
        word = normalise_keyword(token)
        if token in STOP_WORDS or word in STOP_WORDS or token in skip or len(word) < 3 or token.isdigit():
            runs.append([])
        else:
            runs[-1].append(word)
    out: list[str] = []
    for run in runs:
        out.extend(run)
        out.extend(f"{a} {b}" for a, b in pairwise(run))
    return list(dict.fromkeys(out))


def _mmr(scores: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> list[int]:
    """Maximal marginal relevance: pick ``k`` indices trading score against similarity to those picked."""
    chosen: list[int] = []
    candidates = list(range(len(scores)))
    while candidates and len(chosen) < k:
        if chosen:
            redundancy = (vectors[candidates] @ vectors[chosen].T).max(axis=1)
            value = (1 - diversity) * scores[candidates] - diversity * redundancy
        else:
            value = scores[candidates]
        best = candidates[int(np.argmax(value))]
        chosen.append(best)
        candidates.remove(best)
    return chosen


class KeyphraseAnalyser:
    """Builds :class:`ItemProfile` objects for a whole catalog in one batched pass."""

    def __init__(self, embedder: Embedder, settings: KeyphraseSettings | None = None) -> None:
        self.embedder = embedder
        self.settings = settings or KeyphraseSettings()

    @property
    def cache_tag(self) -> str:
        """Identifies everything that changes the output (for the profile cache key)."""
        return f"{ANALYSER_VERSION}:{self.embedder.name}:{self.settings}"

    def analyse(self, dataset: Dataset) -> list[ItemProfile]:
        """Profile every item of ``dataset`` (row order of ``dataset.items``)."""
        s = self.settings
        texts = list(dataset.items["text"])
        categories = list(dataset.items["categories"])
        names = _proper_nouns(texts)
        per_item = [_phrases(t, names) for t in texts]
        df = Counter(p for phrases in per_item for p in phrases)
        ceiling = max(s.min_df, int(s.max_df * len(texts)))
        vocab = sorted(p for p, n in df.items() if s.min_df <= n <= ceiling)
        index = {p: i for i, p in enumerate(vocab)}

        item_vec = self.embedder.embed(texts)
        phrase_vec = self.embedder.embed(vocab)
        like_vec = self.embedder.embed([a[0] for a in LIKE_ASPECTS])
        dislike_vec = self.embedder.embed([a[0] for a in DISLIKE_ASPECTS])
        like_rank = self._aspect_scores(item_vec, like_vec, LIKE_ASPECTS, categories)
        dislike_rank = self._aspect_scores(item_vec, dislike_vec, DISLIKE_ASPECTS, categories)

        profiles = []
        for row, (item, cats) in enumerate(zip(dataset.items["item"], categories, strict=True)):
            own = [index[p] for p in per_item[row] if p in index]
            picked = _mmr(phrase_vec[own] @ item_vec[row], phrase_vec[own], s.n_content, s.diversity) if own else []
            like = [self._phrase_reason(vocab[own[i]]) for i in picked]
            for a in np.argsort(-like_rank[row], kind="stable")[: 1 + s.n_content - len(like)]:
                like.append(self._aspect_reason(LIKE_ASPECTS[a]))
            dislike_idx = _mmr(dislike_rank[row], dislike_vec, s.n_dislike, s.diversity)
            dislike = [self._aspect_reason(DISLIKE_ASPECTS[a]) for a in dislike_idx]
            profiles.append(ItemProfile(str(item), tuple(cats), tuple(like), tuple(dislike), "keyphrase"))
        return profiles

    def _aspect_scores(
        self, item_vec: np.ndarray, aspect_vec: np.ndarray, aspects: Sequence[Aspect], categories: list
    ) -> np.ndarray:
        scores = item_vec @ aspect_vec.T
        for row, cats in enumerate(categories):
            cat_set = set(cats)
            bonus = [self.settings.category_bonus if cat_set.intersection(a[2]) else 0.0 for a in aspects]
            scores[row] += np.asarray(bonus, dtype=np.float32)
        return scores

    @staticmethod
    def _phrase_reason(phrase: str) -> Reason:
        return Reason(phrase, tuple(phrase.split()), "keyphrase of the item's text")

    @staticmethod
    def _aspect_reason(aspect: Aspect) -> Reason:
        return Reason(aspect[0], tuple(normalise_keyword(k) for k in aspect[1]), "aspect matching text and categories")
