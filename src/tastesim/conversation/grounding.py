"""Grounding of written user messages: does a message carry what the agent recalled, and is it free of junk?

Every message a writer produces is checked (:meth:`GroundingCheck.check`) for:

- **coverage** of its reasons. A reason is carried when the message holds its head word (the last content
  word: ``cinematography`` of "beautiful cinematography"), or two of its content words, matched loosely
  (folded plurals, shared stems such as suspense/suspenseful, one typo in a long word); or, failing that,
  when the MiniLM cosine between the reason and the message or one of its clauses reaches
  :data:`SIMILARITY_THRESHOLD`, tuned on the hand-labelled pairs in ``tests/fixtures/writer/coverage.jsonl``
  (:func:`tune_threshold`). A query must carry half its reasons (``terse``, ``natural``, ``noisy``) or one
  (``vague``, ``paraphrase``); feedback one of the reasons it is written from.
- **junk**: empty text, a reply cut at its token limit or ending mid-phrase, loops, prompt labels or
  instructions echoed, meta-talk about "the answer" or "this question", role confusion (the user talking
  as the recommender), another domain (books, jobs, creative writing), garbled characters.
- **length**: words within the style's band.
- **paraphrase**: the ``paraphrase`` style's similarity to the previous turn within :data:`PARAPHRASE_BAND`
  (same meaning, other words), and never a near copy of it.

The check is deterministic and cheap: word matching first, the embedder only for reasons no word carries.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tastesim.text import normalise_keyword

__all__ = [
    "LENGTH",
    "PARAPHRASE_BAND",
    "SIMILARITY_THRESHOLD",
    "GroundingCheck",
    "Verdict",
    "clauses",
    "tune_threshold",
]

Embed = Callable[[Sequence[str]], np.ndarray]

SIMILARITY_THRESHOLD = 0.46  # MiniLM cosine of a reason and a clause; tuned by tune_threshold on the fixtures
PARAPHRASE_BAND = (0.5, 0.98)  # MiniLM cosine of a paraphrase and the turn it rephrases
_COPY = 0.75  # token Jaccard of a paraphrase and its previous turn above which it is a copy, not a paraphrase
LENGTH = {  # words per message, by style or feedback kind
    "terse": (1, 16),
    "natural": (4, 35),
    "vague": (2, 25),
    "noisy": (3, 30),
    "paraphrase": (4, 35),
    "accept": (2, 30),
    "like": (3, 35),
    "reject": (2, 30),
    "pass": (2, 30),
    "negative": (2, 30),
}
_ONE_REASON = frozenset({"vague", "paraphrase", "accept", "like", "reject", "pass", "negative"})

# Words that never carry a reason on their own.
_FUNCTION = frozenset(
    """a an the and or of with in on for to at by from as is are be it its this that these those some something
    bit lot lots really very kind sort quite more most much just also any w out up into over""".split()
)
# Head words that name a genre or a form: "dark comedy" is not carried by "comedy" alone.
_GENRE = frozenset("comedy drama thriller fiction story romance action adventure movie film horror".split())
# Words of a request that say nothing about taste: a clause of only these (and genre words) carries no reason
# by similarity ("something about comedy" is close to "dark comedy" in MiniLM, yet says nothing of darkness).
_FILLER = frozenset(
    """i me my you your about know don t m s re ve ll d something anything want wanted like need needs looking
    look find can could would please pls maybe guess hmm not sure any good great get give show have has""".split()
)
_TOKEN = re.compile(r"[a-z0-9]+")
_LABEL = re.compile(
    r"\b(likes?|liked|wants?|request|reply|search|shown|disliked|before|again|keywords|reason|paraphrase)\s*:",
    re.IGNORECASE,
)
_ECHO = re.compile(
    r"\b(movie fan|recommender chatbot|typed to|typed fast|in other words,? in one sentence|never name a movie|"
    r"comma separated|one-sentence request)\b",
    re.IGNORECASE,
)
_META = re.compile(
    r"\b(the answer|this question|in one line|as an ai|language model|the prompt|the request is|here is an? |"
    r"here's an? (request|reply|example)|example:|rewrite|sure[,!] )",
    re.IGNORECASE,
)
_ROLE = re.compile(
    r"\b(i recommend|i'd recommend|i would recommend|i suggest|you might (like|enjoy)|you'll (love|enjoy)|"
    r"here are|how can i help|i can help|glad (i|we) could help|you liked|you're looking for|you are looking for|"
    r"what do you have|what can i do for you|you're here|your (writing|creative)|let me know if you)",
    re.IGNORECASE,
)
_FOREIGN = frozenset(  # words of other domains than movies; a word the reasons themselves use is never foreign
    "book novel author song album recipe restaurant job vacation homework essay poem grammar career parenting "
    "counseling".split()
)
_FOREIGN_PHRASES = ("creative writing", "story idea", "writing project", "comic book")
_DANGLING = frozenset("a an the and or of with w n to for but that which some my your his her their".split())


@dataclass(frozen=True)
class Verdict:
    """What the check found in one message.

    Attributes:
        covered: Reasons the message carries.
        needed: Reasons it had to carry.
        junk: The first kind of junk found (``""`` for none): ``empty``, ``truncated``, ``loop``, ``echo``,
            ``meta``, ``role``, ``domain``, ``garbled``.
        words: Its length in words.
        length_ok: ``words`` is within the style's band (:data:`LENGTH`).
        paraphrase: Cosine to the previous turn (``paraphrase`` style with an embedder), else ``None``.
        paraphrase_ok: The paraphrase is within :data:`PARAPHRASE_BAND` and not a copy (``True`` otherwise).
    """

    covered: int
    needed: int
    junk: str
    words: int
    length_ok: bool
    paraphrase: float | None = None
    paraphrase_ok: bool = True

    @property
    def grounded(self) -> bool:
        """Not junk, and carries the reasons it had to."""
        return not self.junk and self.covered >= self.needed

    @property
    def passed(self) -> bool:
        """Grounded, of the right length and (a paraphrase) within its band: what the guard accepts."""
        return self.grounded and self.length_ok and self.paraphrase_ok

    @property
    def problem(self) -> str:
        """Why it failed: the junk kind, ``ungrounded``, ``length`` or ``paraphrase`` (``""`` when it passed)."""
        if self.junk:
            return self.junk
        if self.covered < self.needed:
            return "ungrounded"
        if not self.length_ok:
            return "length"
        return "" if self.paraphrase_ok else "paraphrase"


def _words(text: str) -> list[str]:
    """Folded word tokens; hyphenated and slashed words are split (``crime-comedy`` is two words)."""
    return [normalise_keyword(t) for t in _TOKEN.findall(text.lower().replace("'s", ""))]


def _content(reason: str) -> list[str]:
    return [w for w in _words(reason) if w not in _FUNCTION]


def _one_typo(a: str, b: str) -> bool:
    """``a`` and ``b`` differ by one edit or one swap of neighbours (Damerau distance 1)."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return a == b
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        swapped = len(diff) == 2 and diff[1] == diff[0] + 1 and (a[diff[0]], a[diff[1]]) == (b[diff[1]], b[diff[0]])
        return len(diff) == 1 or swapped
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def _same(a: str, b: str) -> bool:
    """Loose word match: equal, a shared stem (``suspense``/``suspenseful``), or one typo in a long word."""
    if a == b:
        return True
    shortest = min(len(a), len(b))
    if shortest < 4:
        return False
    prefix = len(_common_prefix(a, b))
    return prefix >= min(6, shortest) or (shortest >= 5 and _one_typo(a, b))


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _carried_by_words(reason: str, words: list[str]) -> bool:
    """Its head word (unless a genre word, which says little without its modifier), or two content words."""
    content = _content(reason)
    if not content:
        return False
    hits = [any(_same(w, m) for m in words) for w in content]
    return (hits[-1] and (len(content) == 1 or content[-1] not in _GENRE)) or sum(hits) >= 2


def clauses(text: str) -> list[str]:
    """The message and its clauses (split at punctuation and at and/with/but), for per-clause similarity."""
    parts = re.split(r"[,;.!?/+]|\b(?:and|with|but|w)\b", text, flags=re.IGNORECASE)
    return [text, *(p.strip() for p in parts if len(p.split()) >= 1 and p.strip() and p.strip() != text.strip())]


def _junk(text: str, reasons: Sequence[str], truncated: bool) -> str:
    """The first kind of junk in ``text`` (``""`` for none); the tests run in order."""
    words = text.split()
    letters = sum(c.isalpha() for c in text)
    if not words or letters < 2:
        return "empty"
    lowered = text.lower()
    tokens = [w.lower().strip(".,;:!?") for w in words]
    own = set(_words(" ".join(reasons)))
    said = set(_words(text))
    tests = (
        ("truncated", lambda: truncated or text.rstrip()[-1:] in {",", ":", "(", "-"} or tokens[-1] in _DANGLING
         or text.count('"') % 2 == 1 or text.count("(") != text.count(")")),
        ("loop", lambda: re.search(r"([a-z])\1{4,}", lowered) is not None or _loops(tokens) or _stutter(lowered)),
        ("echo", lambda: bool(_LABEL.search(text) or _ECHO.search(text))),
        ("meta", lambda: _META.search(text) is not None),
        ("role", lambda: _ROLE.search(text) is not None),
        ("domain", lambda: any(w in said and w not in own for w in _FOREIGN)
         or any(p in lowered for p in _FOREIGN_PHRASES)),
        ("garbled", lambda: letters / max(len(text.replace(" ", "")), 1) < 0.6
         or sum(not c.isascii() for c in text) > 3),
    )  # fmt: skip
    return next((kind for kind, found in tests if found()), "")


def _stutter(text: str) -> bool:
    """A list item of two words or more said twice, or said again right after it ended the previous item:
    "dark comedy, witty dialogue, witty dialogue", "a comedy with witty dialogue, witty dialogue"."""
    items = [" ".join(re.findall(r"[a-z0-9']+", i)) for i in re.split(r"[,;]", text)]
    items = [i for i in items if len(i.split()) >= 2]
    echoed = any(f" {b}".endswith(f" {a}") or a.endswith(f" {b}") for a, b in itertools.pairwise(items))
    return echoed or len(items) != len(set(items))


def _loops(tokens: list[str]) -> bool:
    """A word said four times, or a two- or three-word phrase said three times."""
    content = [t for t in tokens if t and t not in _FUNCTION]
    if content and max(content.count(t) for t in set(content)) >= 4:
        return True
    for n in (2, 3):
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        if grams and max(grams.count(g) for g in set(grams)) >= 3:
            return True
    return False


class GroundingCheck:
    """Checks messages; thread-safe, with the embeddings of texts it has seen kept.

    Args:
        embed: Unit-vector embedder (the MiniLM embedder's ``embed``). ``None`` checks coverage by words only
            and paraphrases by word overlap only (the thresholds are tuned for MiniLM).
        threshold: Cosine at which a clause carries a reason.
    """

    def __init__(self, embed: Embed | None = None, threshold: float = SIMILARITY_THRESHOLD) -> None:
        self.embed = embed
        self.threshold = threshold
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def _vec(self, texts: list[str]) -> np.ndarray:
        assert self.embed is not None
        with self._lock:
            missing = sorted({t for t in texts if t not in self._vectors})
            if missing:
                if len(self._vectors) > 50_000:
                    self._vectors.clear()
                self._vectors.update(zip(missing, np.asarray(self.embed(missing)), strict=True))
            return np.stack([self._vectors[t] for t in texts])

    def similarity(self, reason: str, text: str) -> float:
        """Highest cosine between ``reason`` and ``text`` or one of its clauses (0 without an embedder)."""
        if self.embed is None:
            return 0.0
        parts = [c for c in clauses(text) if any(w not in _FUNCTION | _FILLER | _GENRE for w in _words(c))]
        if not parts:
            return 0.0
        vectors = self._vec([reason, *parts])
        return float((vectors[1:] @ vectors[0]).max())

    def carries(self, reason: str, text: str) -> bool:
        """Whether ``text`` carries ``reason`` (by its words, else by similarity)."""
        return _carried_by_words(reason, _words(text)) or self.similarity(reason, text) >= self.threshold

    def check(
        self, text: str, reasons: Sequence[str], style: str, *, previous: str = "", truncated: bool = False
    ) -> Verdict:
        """Check one message.

        Args:
            text: The message.
            reasons: What it was written from (a query's recalled reasons; feedback's shown and wanted reasons).
            style: A query style or a feedback kind (``accept``, ``reject``, ``pass``, ``negative``).
            previous: The turn a ``paraphrase`` rephrases.
            truncated: The model stopped at its token limit.
        """
        text = " ".join(text.split())
        reasons = [r for r in dict.fromkeys(reasons) if r.strip()]
        junk = _junk(text, reasons, truncated)
        covered = 0 if junk == "empty" else sum(self.carries(r, text) for r in reasons)
        needed = min(1 if style in _ONE_REASON else math.ceil(len(reasons) / 2), len(reasons))
        n = len(text.split())
        low, high = LENGTH.get(style, (1, 40))
        paraphrase, paraphrase_ok = None, True
        if style == "paraphrase" and previous and not junk:
            paraphrase, paraphrase_ok = self._paraphrase(text, previous)
        return Verdict(covered, needed, junk, n, low <= n <= high, paraphrase, paraphrase_ok)

    def _paraphrase(self, text: str, previous: str) -> tuple[float | None, bool]:
        a, b = set(_words(text)), set(_words(previous))
        overlap = len(a & b) / max(len(a | b), 1)
        if overlap > _COPY:
            return None, False
        if self.embed is None:
            return None, overlap >= 0.15
        vectors = self._vec([text, previous])
        cosine = float(vectors[0] @ vectors[1])
        return round(cosine, 4), PARAPHRASE_BAND[0] <= cosine <= PARAPHRASE_BAND[1]


def tune_threshold(similarities: Sequence[float], labels: Sequence[bool]) -> tuple[float, float]:
    """The cosine threshold that best separates carried (``True``) from not carried pairs, and its accuracy.

    Candidates are midpoints between neighbouring observed similarities; ties go to the widest margin
    (the middle of the best interval), so the result does not hinge on one example.
    """
    sims = np.asarray(similarities, dtype=np.float64)
    truth = np.asarray(labels, dtype=bool)
    cuts = np.unique(sims)
    candidates = np.concatenate([[cuts[0] - 1e-3], (cuts[:-1] + cuts[1:]) / 2, [cuts[-1] + 1e-3]])
    accuracy = np.array([((sims >= c) == truth).mean() for c in candidates])
    best = np.flatnonzero(accuracy == accuracy.max())
    # The longest run of consecutive best candidates, and its middle.
    runs = np.split(best, np.flatnonzero(np.diff(best) != 1) + 1)
    run = max(runs, key=len)
    middle = (candidates[run[0]] + candidates[run[-1]]) / 2
    return round(float(middle), 2), float(accuracy.max())
