"""The target-leak check: does a user message give away the item the user is looking for?

In target-item sessions a user looks for one item; a message that names it (or all but names it) makes any
CRS look good (Zhu et al., arXiv 2403.16416). Every user message is scored against its target
(:meth:`LeakCheck.score`):

- **title**: the title, without its year, with a trailing article moved to the front ("Mask, The" is also
  "The Mask") or dropped, or its part before a colon; a one-word form only when the word is rare in the
  catalog (in at most :data:`RARE` items' texts), so "Heat" is not found in "turn up the heat";
- **unique names**: words of the target's title and description found in at most :data:`RARE` items' texts
  (names of characters, places, made-up words: "Gunderson", "GoldenEye");
- **n-gram overlap**: two-word phrases of content words shared with the target's text and rare in the
  catalog ("satellite weapon");
- **embedding similarity**: a clause of the message within cosine :data:`TITLE_SIMILARITY` of the title.

:meth:`LeakCheck.rewrite` removes titles and names; what cannot be removed is reported, and the session
then sends the template writer's message instead.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tastesim.conversation.grounding import clauses
from tastesim.text import STOP_WORDS

__all__ = ["RARE", "TITLE_SIMILARITY", "Leak", "LeakCheck", "title_forms"]

Embed = Callable[[Sequence[str]], np.ndarray]
RARE = 2  # a word or phrase found in at most this many items' texts identifies an item
TITLE_SIMILARITY = 0.8  # MiniLM cosine of a message clause and the title above which the title leaks
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
_ARTICLE = re.compile(r"^(.*),\s*(the|a|an|le|la|les|il|el|die|der|das)$", re.IGNORECASE)
_COMMON = STOP_WORDS | frozenset("like want something movie movies film films please need looking maybe".split())


@dataclass(frozen=True)
class Leak:
    """What the check found; ``leaky`` when anything identifies the target."""

    titles: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    similarity: float = 0.0
    similar: bool = False

    @property
    def leaky(self) -> bool:
        """Anything found."""
        return bool(self.titles or self.names or self.phrases or self.similar)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def title_forms(title: str) -> list[str]:
    """Ways a title may be written: as is, without the year, article moved or dropped, before a colon."""
    bare = _YEAR.sub("", title).strip()
    forms = {bare}
    moved = _ARTICLE.match(bare)
    if moved:
        forms |= {f"{moved.group(2)} {moved.group(1)}", moved.group(1)}
    for form in list(forms):
        head = form.split(":")[0].strip()
        if head != form and len(head.split()) >= 2:
            forms.add(head)
    return sorted((f for f in forms if f), key=len, reverse=True)


class LeakCheck:
    """Scores messages against a target item of the catalog.

    Args:
        titles: Item titles, in catalog row order.
        texts: Item descriptions, in the same order.
        embed: Unit-vector embedder for the title similarity; ``None`` leaves that test out.
        similarity: Cosine at which a clause is the title.
        allowed: Phrases a user may always say (the catalog's shared reasons): their words are never names and
            their word pairs never leaking phrases.
    """

    def __init__(
        self,
        titles: Sequence[str],
        texts: Sequence[str],
        embed: Embed | None = None,
        similarity: float = TITLE_SIMILARITY,
        allowed: Sequence[str] = (),
    ) -> None:
        self.titles = list(titles)
        self.texts = list(texts)
        self.embed = embed
        self.threshold = similarity
        docs = [f"{t}. {d}" for t, d in zip(self.titles, self.texts, strict=True)]
        self._df = Counter(w for doc in docs for w in set(_words(doc)))
        self._bigram_df = Counter(g for doc in docs for g in set(_bigrams(doc)))
        self._title_vectors: dict[int, np.ndarray] = {}
        self._allowed_words = {w for phrase in allowed for w in _words(phrase)}
        self._allowed_pairs = {g for phrase in allowed for g in _bigrams(phrase)}

    def _rare(self, word: str) -> bool:
        return len(word) >= 4 and word not in _COMMON and word not in self._allowed_words and self._df[word] <= RARE

    def names(self, item: int) -> list[str]:
        """The target's unique names: rare words of its title and its capitalised rare words."""
        title_words = _words(_YEAR.sub("", self.titles[item]))
        capitalised = re.findall(r"(?<![.!?]\s)(?<!^)\b[A-Z][A-Za-z0-9]+", self.texts[item])
        found = [w for w in title_words if self._rare(w)] + [w.lower() for w in capitalised if self._rare(w.lower())]
        return list(dict.fromkeys(found))

    def score(self, text: str, item: int) -> Leak:
        """What in ``text`` identifies catalog item ``item``."""
        lowered = text.lower()
        titles = tuple(
            form
            for form in title_forms(self.titles[item])
            if (len(_words(form)) >= 2 or self._rare(form.lower())) and _has(lowered, form.lower())
        )
        names = tuple(n for n in self.names(item) if _has(lowered, n))
        own = set(_bigrams(f"{self.titles[item]}. {self.texts[item]}"))
        phrases = tuple(
            " ".join(g)
            for g in dict.fromkeys(_bigrams(text))
            if g in own and self._bigram_df[g] <= RARE and g not in self._allowed_pairs
        )
        similarity = self._similarity(text, item)
        return Leak(titles, names, phrases, round(similarity, 4), similarity >= self.threshold)

    def _similarity(self, text: str, item: int) -> float:
        if self.embed is None:
            return 0.0
        if item not in self._title_vectors:
            self._title_vectors[item] = np.asarray(self.embed([_YEAR.sub("", self.titles[item])]))[0]
        vectors = np.asarray(self.embed(clauses(text)))
        return float((vectors @ self._title_vectors[item]).max())

    def rewrite(self, text: str, item: int) -> tuple[str, Leak, Leak]:
        """``text`` with the target's titles replaced by "that one" and its names dropped; the leak found
        before and the one left after."""
        before = self.score(text, item)
        if not before.leaky:
            return text, before, before
        out = text
        for form in (*before.titles, *before.names):
            replacement = "that one" if form in before.titles else ""
            out = re.sub(rf"(?<![\w']){re.escape(form)}(?![\w'])", replacement, out, flags=re.IGNORECASE)
        out = re.sub(r"\s+([,.!?])", r"\1", " ".join(out.split()))
        return out, before, self.score(out, item)


def _has(text: str, phrase: str) -> bool:
    return re.search(rf"(?<![\w']){re.escape(phrase)}(?![\w'])", text) is not None


def _bigrams(text: str) -> list[tuple[str, str]]:
    """Pairs of neighbouring content words, never across punctuation ("teenage girl, living" has no pair
    "girl living")."""
    pairs = []
    for segment in re.split(r"[,;:.!?()/]", text):
        content = [w for w in _words(segment) if w not in _COMMON and len(w) > 2]
        pairs += list(itertools.pairwise(content))
    return pairs
