"""Query and feedback writers: an offline template writer and an LLM writer.

A writer turns what the agent recalled (:class:`QueryInput`) or what it thought of a reply
(:class:`FeedbackInput`) into a message. Writers never see item titles, so a message cannot name a target.
Writers count the texts asked of them (``requests``) and the texts they made (``calls``: every template
text, and each LLM call of the LLM writer), so a run can report writer calls per interaction. The LLM
writer asks through the on-disk reply cache (:func:`tastesim.llm.cache.cached_complete`): a population
repeating the same reasons in the same style costs one LLM call, in this run and the next.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from tastesim.llm.backend import LLMBackend, LLMError
from tastesim.llm.cache import ReplyCache, cached_complete
from tastesim.prompts import load_prompt
from tastesim.rng import RandomTree, Stream

__all__ = [
    "STYLES",
    "FeedbackInput",
    "LLMWriter",
    "QueryInput",
    "QueryWriter",
    "TemplateWriter",
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
    """Writes user messages for sessions on an asyncio event loop, which a writer never blocks.

    Attributes:
        requests: Texts asked for.
        calls: Texts the writer made itself (every template text; each LLM call of an LLM writer).
        fallbacks: Texts it could not write itself (an LLM writer's failed or empty replies).
    """

    requests: int
    calls: int
    fallbacks: int

    async def aquery(self, spec: QueryInput) -> str:
        """The user's request."""
        ...

    async def afeedback(self, spec: FeedbackInput) -> str:
        """The user's reaction to a reply."""
        ...

    def close(self) -> None:
        """Release what the writer holds (threads, connections)."""
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
    """Deterministic offline writer: one template per style; noise is drawn from the text's own stream.

    A text takes microseconds: the async methods write it inline, on the event loop.
    """

    fallbacks = 0  # it always writes

    def __init__(self, seed: int = 0) -> None:
        self._tree = RandomTree(seed)
        self.requests = 0

    @property
    def calls(self) -> int:
        """Texts written: every one asked for (nothing is cached)."""
        return self.requests

    async def aquery(self, spec: QueryInput) -> str:
        """:meth:`query`, inline."""
        return self.query(spec)

    async def afeedback(self, spec: FeedbackInput) -> str:
        """:meth:`feedback`, inline."""
        return self.feedback(spec)

    def close(self) -> None:
        """Nothing to release."""

    def query(self, spec: QueryInput) -> str:
        """Write the query in ``spec.style``."""
        self.requests += 1
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
        self.requests += 1
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
class LLMWriter:
    """Writes messages with an LLM from the prompt files ``query_<style>.txt`` and ``feedback_<kind>.txt``.

    The prompts are few-shot completions stopped at the end of the line (small local models follow those
    better than chat instructions). Replies go through ``cache``; an empty reply, or a failed call, falls
    back to the template writer's text (counted in ``fallbacks``). The async methods write on one worker
    thread (an embedded model must not run twice at once), so the event loop keeps serving other
    sessions; sessions missing the same text at once queue there, and all but the first find it cached.

    Args:
        backend: The LLM.
        cache: The reply cache (shared with item analysis: ``llm-replies.sqlite`` in the cache folder).
        seed: Generation seed, and the fallback template writer's.
        max_tokens: Token limit of one message.
    """

    def __init__(self, backend: LLMBackend, cache: ReplyCache, *, seed: int = 0, max_tokens: int = 48) -> None:
        self.backend = backend
        self.cache = cache
        self.seed = seed
        self.max_tokens = max_tokens
        self._fallback = TemplateWriter(seed)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tastesim-writer")
        self.requests = 0
        self.calls = 0
        self.fallbacks = 0

    def _complete(self, prompt_name: str, **fields: str) -> str:
        """The model's one-line text for the prompt (``""`` when the call failed)."""
        self.requests += 1
        prompt = load_prompt(prompt_name)
        try:
            reply, cached = cached_complete(
                self.backend,
                self.cache,
                prompt.version,
                prompt.render(**fields),
                max_tokens=self.max_tokens,
                temperature=0.0,
                seed=self.seed,
                stop=["\n"],
            )
        except LLMError:  # the service failed after the backend's own retries
            self.calls += 1
            return ""
        self.calls += not cached
        return " ".join(reply.text.split()).strip(" \"'")

    def query(self, spec: QueryInput) -> str:
        """Write the query with the style's prompt (blocks for the LLM call on a cache miss)."""
        text = self._complete(
            f"query_{spec.style}",
            category=spec.category.lower(),
            reasons="; ".join(spec.reasons),
            previous=spec.previous or self._fallback.query(QueryInput("natural", spec.category, spec.reasons)),
        )
        if not text:
            self.fallbacks += 1
            return self._fallback.query(spec)
        return text

    def feedback(self, spec: FeedbackInput) -> str:
        """Write the reaction with the kind's prompt (blocks for the LLM call on a cache miss)."""
        text = self._complete(f"feedback_{spec.kind}", reason=spec.reason)
        if not text:
            self.fallbacks += 1
            return self._fallback.feedback(spec)
        return text

    async def aquery(self, spec: QueryInput) -> str:
        """:meth:`query` on the worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.query, spec)

    async def afeedback(self, spec: FeedbackInput) -> str:
        """:meth:`feedback` on the worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.feedback, spec)

    def close(self) -> None:
        """Stop the worker thread (a call in progress finishes) and close the cache's connection."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.cache.close()
