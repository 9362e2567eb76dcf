"""Query and feedback writers: an offline template writer, an LLM writer, and the cache in front of both.

A writer turns what the agent recalled (:class:`QueryInput`) or what it thought of a reply
(:class:`FeedbackInput`) into a message. Writers never see item titles, so a message cannot name a target.
:class:`CachedWriter` keys every text by (writer, input): a population repeating the same reasons in the
same style costs one call, and it counts calls so a run can report LLM calls per interaction.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from tastesim.prompts import load_prompt
from tastesim.rng import RandomTree, Stream

__all__ = [
    "STYLES",
    "CachedWriter",
    "FeedbackInput",
    "LLMWriter",
    "QueryInput",
    "QueryWriter",
    "TemplateWriter",
    "TextBackend",
    "render_prompt",
]

STYLES = ("terse", "natural", "vague", "noisy", "paraphrase")
Style = Literal["terse", "natural", "vague", "noisy", "paraphrase"]


@dataclass(frozen=True)
class QueryInput:
    """What a query is written from: a style, the pursued category, recalled reasons, the previous query."""

    style: Style
    category: str
    reasons: tuple[str, ...]
    previous: str = ""  # the agent's previous query; only the paraphrase style reads it


@dataclass(frozen=True)
class FeedbackInput:
    """What feedback is written from: ``accept`` (liked a shown item), ``reject`` (disliked one), ``pass``."""

    kind: Literal["accept", "reject", "pass"]
    reason: str


@runtime_checkable
class QueryWriter(Protocol):
    """Writes user messages; ``name`` identifies it in cache keys and reports.

    ``fallbacks`` counts texts it could not write itself (an LLM writer's failed or empty replies).
    """

    name: str
    fallbacks: int

    def query(self, spec: QueryInput) -> str:
        """The user's request."""
        ...

    def feedback(self, spec: FeedbackInput) -> str:
        """The user's reaction to a reply."""
        ...


# -- template writer -------------------------------------------------------------------------------
_SLANG = ("ngl", "lol", "tbh", "fr", "pls")
_SYNONYMS = {
    "looking for": "after",
    "movie": "film",
    "film": "movie",
    "with": "that has",
    "something": "anything",
    "i'd": "i would",
    "want": "would like",
}


def _listing(reasons: tuple[str, ...]) -> str:
    if len(reasons) <= 1:
        return "".join(reasons)
    return ", ".join(reasons[:-1]) + " and " + reasons[-1]


class TemplateWriter:
    """Deterministic offline writer: one template per style; noise is drawn from the text's own stream."""

    blocking = False  # microseconds per text: written inline, never handed to a thread
    fallbacks = 0  # it always writes

    def __init__(self, seed: int = 0) -> None:
        self._tree = RandomTree(seed)
        self.name = f"template:{seed}"

    def query(self, spec: QueryInput) -> str:
        """Write the query in ``spec.style``."""
        genre, reasons = spec.category.lower(), spec.reasons or ("something good",)
        if spec.style == "terse":
            return ", ".join((*reasons, genre))
        if spec.style == "natural":
            return f"I'm looking for a {genre} movie with {_listing(reasons)}."
        if spec.style == "vague":
            return f"hmm, maybe something {genre}-ish? I liked {reasons[0]} once, I think."
        if spec.style == "noisy":
            return self._noise(f"{_SLANG[len(reasons[0]) % len(_SLANG)]} need a {genre} flick w/ {_listing(reasons)}")
        if spec.previous:
            return _paraphrase(spec.previous)
        return f"Could you suggest a {genre} film? Ideally one with {_listing(tuple(reversed(reasons)))}."

    def feedback(self, spec: FeedbackInput) -> str:
        """Write the reaction of kind ``spec.kind`` around ``spec.reason``."""
        if spec.kind == "accept":
            return f"Yes, that one sounds right: {spec.reason}."
        if spec.kind == "reject":
            return f"Not that, {spec.reason}."
        return f"None of these grab me, I want {spec.reason}."

    def _noise(self, text: str) -> str:
        """Lower-case, swap two letters in about a quarter of the longer words, drop some punctuation."""
        rng = self._tree.generator(Stream.NOISE, key=text)
        words = text.lower().split()
        for i, word in enumerate(words):
            if len(word) > 4 and rng.random() < 0.25:
                j = int(rng.integers(1, len(word) - 2))
                words[i] = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
        return " ".join(words).replace(",", "")


def _paraphrase(previous: str) -> str:
    text = previous.lower()
    for old, new in _SYNONYMS.items():
        text = re.sub(rf"\b{re.escape(old)}\b", new, text, count=1)
    return f"In other words, {text}" if text != previous.lower() else f"Put differently: {text}"


# -- LLM writer ------------------------------------------------------------------------------------
class TextBackend(Protocol):
    """The LLM interface the writer needs (``tastesim.llm.backend.LLMBackend`` satisfies it)."""

    def complete(self, prompt: str, **options: object) -> object:
        """A reply with a ``text`` attribute."""
        ...


def render_prompt(name: str, **fields: str) -> str:
    """Render the packaged prompt file ``prompts/<name>.txt`` (see :mod:`tastesim.prompts`) with ``fields``."""
    return load_prompt(name).render(**fields)


class LLMWriter:
    """Writes messages with an LLM from the prompt files ``query_<style>.txt`` and ``feedback_<kind>.txt``.

    The prompts are few-shot completions stopped at the end of the line (small local models follow those
    better than chat instructions). An empty reply, or a failed call, falls back to the template writer's
    text (counted in ``fallbacks``). Calls block; the cache keeps them rare.
    """

    blocking = True  # a call takes a fraction of a second: the cache runs it off the event loop

    def __init__(self, backend: TextBackend, name: str = "llm", max_tokens: int = 48, seed: int = 0) -> None:
        self.backend = backend
        self.name = name
        self.max_tokens = max_tokens
        self.seed = seed
        self._fallback = TemplateWriter(seed)
        self.fallbacks = 0

    def _complete(self, prompt: str) -> str:
        try:
            reply = self.backend.complete(
                prompt, max_tokens=self.max_tokens, temperature=0.0, seed=self.seed, stop=["\n"]
            )
        except RuntimeError:  # the backend's LLMError: the service failed after its own retries
            return ""
        return " ".join(str(getattr(reply, "text", "")).split()).strip(" \"'")

    def query(self, spec: QueryInput) -> str:
        """Write the query with the style's prompt."""
        text = self._complete(
            render_prompt(
                f"query_{spec.style}",
                category=spec.category.lower(),
                reasons="; ".join(spec.reasons),
                previous=spec.previous or self._fallback.query(QueryInput("natural", spec.category, spec.reasons)),
            )
        )
        if not text:
            self.fallbacks += 1
            return self._fallback.query(spec)
        return text

    def feedback(self, spec: FeedbackInput) -> str:
        """Write the reaction with the kind's prompt."""
        text = self._complete(render_prompt(f"feedback_{spec.kind}", reason=spec.reason))
        if not text:
            self.fallbacks += 1
            return self._fallback.feedback(spec)
        return text


# -- cache -----------------------------------------------------------------------------------------
class CachedWriter:
    """Memoises a writer by (writer name, input); counts requests and calls to the inner writer.

    Sessions use the async methods: a miss of a ``blocking`` writer (the LLM) runs on one worker thread (an
    embedded model must not run twice at once), so the event loop keeps serving other sessions, and
    sessions missing the same text at the same time share one call.
    """

    def __init__(self, inner: QueryWriter) -> None:
        self.inner = inner
        self.name = inner.name
        self._texts: dict[tuple[str, QueryInput | FeedbackInput], str] = {}
        self._pending: dict[tuple[str, QueryInput | FeedbackInput], asyncio.Future[str]] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tastesim-writer")
        self.requests = 0
        self.calls = 0

    def _write(self, spec: QueryInput | FeedbackInput) -> str:
        return self.inner.query(spec) if isinstance(spec, QueryInput) else self.inner.feedback(spec)

    def _get(self, spec: QueryInput | FeedbackInput) -> str:
        self.requests += 1
        key = (self.inner.name, spec)
        if key not in self._texts:
            self.calls += 1
            self._texts[key] = self._write(spec)
        return self._texts[key]

    async def _aget(self, spec: QueryInput | FeedbackInput) -> str:
        self.requests += 1
        key = (self.inner.name, spec)
        if key in self._texts:
            return self._texts[key]
        if not getattr(self.inner, "blocking", True):
            self.calls += 1
            self._texts[key] = self._write(spec)
            return self._texts[key]
        future = self._pending.get(key)
        if future is None:
            self.calls += 1
            future = asyncio.get_running_loop().run_in_executor(self._pool, self._write, spec)
            self._pending[key] = future
        text = await future
        self._texts[key] = text
        self._pending.pop(key, None)
        return text

    def query(self, spec: QueryInput) -> str:
        """The cached query text."""
        return self._get(spec)

    def feedback(self, spec: FeedbackInput) -> str:
        """The cached feedback text."""
        return self._get(spec)

    async def aquery(self, spec: QueryInput) -> str:
        """The cached query text, written off the event loop on a miss."""
        return await self._aget(spec)

    async def afeedback(self, spec: FeedbackInput) -> str:
        """The cached feedback text, written off the event loop on a miss."""
        return await self._aget(spec)

    def close(self) -> None:
        """Stop the worker thread."""
        self._pool.shutdown(wait=False)
