"""Query and feedback writers: an offline template writer, an LLM writer, and the guard around them.

A writer turns what the agent recalled (:class:`QueryInput`) or what it thought of the items shown
(:class:`FeedbackInput`) into a message. Writers never see item titles, so a message cannot name a target.

:class:`Writer` is what a session talks to. Every message it hands out is checked
(:class:`~tastesim.conversation.grounding.GroundingCheck`) and logged (:class:`MessageLog`). With an LLM,
it is the guard: a draft that fails the check is drafted once more with another seed (and a sampling
temperature, so the seed matters); if that fails too, the template writer's message is sent, marked
``fallback``. Both are counted, and a fallback never passes as LLM text: each message carries its source.

The LLM writer asks through the on-disk reply cache (:func:`tastesim.llm.cache.cached_complete`): a
population repeating the same reasons in the same style costs one LLM call, in this run and the next.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from tastesim.conversation.grounding import GroundingCheck, Verdict
from tastesim.llm.backend import LLMBackend, LLMError
from tastesim.llm.cache import ReplyCache, cached_complete
from tastesim.prompts import load_prompt
from tastesim.rng import RandomTree, Stream

__all__ = [
    "FEEDBACK_KINDS",
    "STYLES",
    "Draft",
    "FeedbackInput",
    "LLMWriter",
    "MessageLog",
    "QueryInput",
    "QueryWriter",
    "TemplateWriter",
    "Writer",
    "Written",
    "tidy",
]

STYLES = ("terse", "natural", "vague", "noisy", "paraphrase")
Style = Literal["terse", "natural", "vague", "noisy", "paraphrase"]
FEEDBACK_KINDS = ("accept", "like", "reject", "pass", "negative")
FeedbackKind = Literal["accept", "like", "reject", "pass", "negative"]
Source = Literal["template", "llm", "llm-retry", "fallback"]
RETRY_TEMPERATURE = 0.8  # the guard's second draft samples, so that its other seed gives other text


@dataclass(frozen=True)
class QueryInput:
    """What a query is written from: a style, the pursued category, recalled reasons, the previous query."""

    style: Style
    category: str
    reasons: tuple[str, ...]
    previous: str = ""  # the agent's previous query; only the paraphrase style reads it


@dataclass(frozen=True)
class FeedbackInput:
    """What feedback is written from (reasons of the items shown, never their titles).

    Attributes:
        kind: ``accept`` (found it), ``like`` (likes a shown item, but keeps looking), ``reject`` (disliked
            one), ``pass`` (nothing appealed) or ``negative`` (a user who only says what is wrong).
        reasons: Accept and like: the liked item's like reasons; reject and negative: the disliked item's
            dislike reasons; pass: like reasons of the items shown.
        wants: What the user wants instead (like, reject, pass).
    """

    kind: FeedbackKind
    reasons: tuple[str, ...]
    wants: tuple[str, ...] = ()

    @property
    def checked(self) -> tuple[str, ...]:
        """The reasons a written reply must carry one of."""
        return self.reasons if self.kind in ("accept", "negative") else (*self.reasons, *self.wants)


@dataclass(frozen=True)
class Draft:
    """One LLM text: ``truncated`` when the model stopped at its token limit; ``called`` when not cached."""

    text: str
    truncated: bool = False
    called: bool = False
    tokens: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Written:
    """A message as sent: its text, where it came from, and the check of it (and of the first LLM draft)."""

    text: str
    source: Source
    verdict: Verdict
    raw: Verdict


@dataclass(frozen=True)
class MessageLog:
    """One written message, for the report: ``style`` is the query style or the feedback kind."""

    kind: Literal["query", "feedback"]
    style: str
    source: Source
    raw: Verdict
    final: Verdict


@runtime_checkable
class QueryWriter(Protocol):
    """Writes user messages for sessions on an asyncio event loop, which a writer never blocks.

    Attributes:
        requests: Texts asked for.
        calls: Texts the writer made itself (every template text; each uncached LLM call, retries included).
        fallbacks: Messages the LLM could not write acceptably, sent as the template writer's text.
        retries: Second drafts asked of the LLM.
        log: One :class:`MessageLog` per message.
    """

    requests: int
    calls: int
    fallbacks: int
    retries: int
    log: list[MessageLog]

    async def aquery(self, spec: QueryInput) -> Written:
        """The user's request."""
        ...

    async def afeedback(self, spec: FeedbackInput) -> Written:
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
    """Deterministic offline writer: one template per style; noise is drawn from the text's own stream."""

    def __init__(self, seed: int = 0) -> None:
        self._tree = RandomTree(seed)

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
        """Write the reaction of kind ``spec.kind`` around its reasons."""
        first = spec.reasons[0] if spec.reasons else "this"
        if spec.kind == "accept":
            return f"Yes, that one sounds right: {_listing(spec.reasons)}."
        if spec.kind == "negative":
            return f"No, {first}, not for me."
        if spec.kind == "like":
            return f"I like the {first} in that one, but I want {_listing(spec.wants or spec.reasons)}."
        want = f" I want {_listing(spec.wants)}." if spec.wants else ""
        if spec.kind == "reject":
            return f"Not that, {first}.{want}"
        return f"None of these grab me.{want}" if want else f"None of these grab me, not {first}."

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
def tidy(text: str, truncated: bool) -> tuple[str, bool]:
    """A draft with its loop cut off: tiny models at temperature 0 often repeat a phrase or a list item until
    the token limit. The text is cut after the first time a run of 1-6 words repeats three times in a row,
    and repeated items of a comma or semicolon list are dropped, with a last item cut mid-way. A draft that
    hit its token limit only because of such a loop is whole after the cut (``truncated`` becomes False).
    """
    words = " ".join(text.split()).strip(" \"'").split(" ")
    cut = len(words)
    for n in range(1, 7):
        for i in range(len(words) - 3 * n + 1):
            if i + n < cut and words[i : i + n] == words[i + n : i + 2 * n] == words[i + 2 * n : i + 3 * n]:
                cut = i + n
                break
    looped = cut < len(words)
    out = " ".join(words[:cut]).rstrip(",;")
    items = re.split(r"(?<=[,;])\s+", out)
    if len(items) > 2:
        seen: set[str] = set()
        kept = []
        for item in items:
            key = item.lower().strip(" ,;.")
            if key not in seen:
                seen.add(key)
                kept.append(item)
        if len(kept) < len(items):
            looped = True
            if truncated and kept[-1] == items[-1]:
                kept = kept[:-1]  # the item the token limit cut
        out = " ".join(kept).rstrip(",; ")
    return out, truncated and not looped


class LLMWriter:
    """Drafts messages with an LLM from the prompt files ``query_<style>.txt`` and ``feedback_<kind>.txt``.

    The prompts are few-shot completions stopped at the end of the line (small local models follow those
    better than chat instructions); a prompt's last line may start the reply ("Reply: Yes, I love the"),
    which keeps a 135M model on the reasons; that start is part of the message. ``prompts="v1"`` uses the
    first prompt set (``*_v1.txt``, one example each, rendered as the first writer did: ending in a newline),
    kept to measure the change against.

    Args:
        backend: The LLM.
        cache: The reply cache (shared with item analysis: ``llm-replies.sqlite`` in the cache folder).
        seed: Generation seed of first drafts; a retry uses ``seed + attempt``.
        max_tokens: Token limit of one message.
        prompts: ``v2`` (the current set) or ``v1``.
    """

    def __init__(
        self, backend: LLMBackend, cache: ReplyCache, *, seed: int = 0, max_tokens: int = 48, prompts: str = "v2"
    ) -> None:
        if prompts not in ("v1", "v2"):
            raise ValueError(f"unknown prompt set {prompts!r}; choose v1 or v2")
        self.backend = backend
        self.cache = cache
        self.seed = seed
        self.max_tokens = max_tokens
        self.prompts = prompts

    def _prompt_name(self, name: str) -> str:
        """The prompt file: the v1 set had no ``like`` or ``negative`` feedback, which use the current files."""
        return f"{name}_v1" if self.prompts == "v1" and name not in ("feedback_like", "feedback_negative") else name

    def _complete(self, name: str, attempt: int, **fields: str) -> Draft:
        prompt = load_prompt(self._prompt_name(name))
        text = prompt.render(**fields)
        if self.prompts == "v2":
            text = text.rstrip()  # a prompt ending in a newline makes the reply start a new, unrelated line
        try:
            reply, cached = cached_complete(
                self.backend,
                self.cache,
                prompt.version,
                text,
                max_tokens=self.max_tokens,
                temperature=0.0 if attempt == 0 else RETRY_TEMPERATURE,
                seed=self.seed + attempt,
                stop=["\n"],
            )
        except LLMError:  # the service failed after the backend's own retries
            return Draft("", called=True)
        started = text.rsplit("\n", 1)[-1].partition(":")[2].strip()  # the prompt may start the reply
        whole = f"{started} {reply.text.strip()}" if started else reply.text
        clean, truncated = tidy(whole, reply.completion_tokens >= self.max_tokens)
        return Draft(clean, truncated, not cached, reply.completion_tokens, reply.seconds)

    def query(self, spec: QueryInput, attempt: int = 0) -> Draft:
        """Draft the query with the style's prompt (blocks for the LLM call on a cache miss)."""
        previous = spec.previous or TemplateWriter().query(QueryInput("natural", spec.category, spec.reasons))
        return self._complete(
            f"query_{spec.style}", attempt, category=spec.category.lower(), reasons="; ".join(spec.reasons),
            previous=previous,
        )  # fmt: skip

    def feedback(self, spec: FeedbackInput, attempt: int = 0) -> Draft:
        """Draft the reaction with the kind's prompt (blocks for the LLM call on a cache miss)."""
        reasons = "; ".join(spec.reasons) or "nothing in particular"
        wants = "; ".join(spec.wants) or "something else"
        single = (spec.wants if spec.kind == "pass" and spec.wants else spec.reasons or ("this",))[0]
        return self._complete(f"feedback_{spec.kind}", attempt, reasons=reasons, wants=wants, reason=single)


# -- the writer sessions use -------------------------------------------------------------------------
@dataclass
class _Counters:
    requests: int = 0
    calls: int = 0
    fallbacks: int = 0
    retries: int = 0
    tokens: int = 0
    llm_seconds: float = 0.0
    log: list[MessageLog] = field(default_factory=list)


class Writer:
    """Writes, checks and logs every message; with ``llm``, guards it (see the module docstring).

    Work runs on one worker thread (an embedded model must not run twice at once; the check may embed), so
    the event loop keeps serving other sessions; sessions missing the same text at once queue there, and all
    but the first find it cached.

    Args:
        check: The grounding check.
        llm: The LLM writer; ``None`` writes every message from templates.
        seed: The template writer's seed.
        guard: Regenerate and fall back on failed drafts (``False`` sends the first draft, still checked).
    """

    def __init__(self, check: GroundingCheck, llm: LLMWriter | None = None, *, seed: int = 0, guard: bool = True):
        self.check = check
        self.llm = llm
        self.guard = guard
        self.template = TemplateWriter(seed)
        self._count = _Counters()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tastesim-writer")

    requests = property(lambda self: self._count.requests)
    calls = property(lambda self: self._count.calls)
    fallbacks = property(lambda self: self._count.fallbacks)
    retries = property(lambda self: self._count.retries)
    tokens = property(lambda self: self._count.tokens)
    llm_seconds = property(lambda self: self._count.llm_seconds)
    log = property(lambda self: self._count.log)

    def query(self, spec: QueryInput) -> Written:
        """Write the query (blocking)."""
        return self._write(
            "query",
            spec.style,
            draft=lambda attempt: self.llm.query(spec, attempt),  # type: ignore[union-attr]
            template=lambda: self.template.query(spec),
            reasons=spec.reasons,
            previous=spec.previous if spec.style == "paraphrase" else "",
        )

    def feedback(self, spec: FeedbackInput) -> Written:
        """Write the reaction (blocking)."""
        return self._write(
            "feedback",
            spec.kind,
            draft=lambda attempt: self.llm.feedback(spec, attempt),  # type: ignore[union-attr]
            template=lambda: self.template.feedback(spec),
            reasons=spec.checked,
            previous="",
        )

    def _write(
        self,
        kind: str,
        style: str,
        *,
        draft: Callable[[int], Draft],
        template: Callable[[], str],
        reasons: tuple[str, ...],
        previous: str,
    ) -> Written:
        def judge(text: str, truncated: bool = False) -> Verdict:
            return self.check.check(text, reasons, style, previous=previous, truncated=truncated)

        with self._lock:
            self._count.requests += 1
        if self.llm is None:
            text = template()
            verdict = judge(text)
            written = Written(text, "template", verdict, verdict)
            self._record(kind, style, written, calls=1)
            return written
        first = draft(0)
        raw = judge(first.text, first.truncated)
        drafts = [first]
        written = Written(first.text, "llm", raw, raw)
        if not raw.passed and self.guard:
            second = draft(1)
            drafts.append(second)
            verdict = judge(second.text, second.truncated)
            written = Written(second.text, "llm-retry", verdict, raw)
            if not verdict.passed:
                text = template()
                written = Written(text, "fallback", judge(text), raw)
        self._record(kind, style, written, drafts=drafts)
        return written

    def _record(self, kind: str, style: str, written: Written, *, calls: int = 0, drafts: list[Draft] = ()) -> None:
        with self._lock:
            c = self._count
            c.calls += calls + sum(d.called for d in drafts)
            c.retries += len(drafts) > 1
            c.fallbacks += written.source == "fallback"
            c.tokens += sum(d.tokens for d in drafts if d.called)
            c.llm_seconds += sum(d.seconds for d in drafts if d.called)
            c.log.append(MessageLog(kind, style, written.source, written.raw, written.verdict))  # type: ignore[arg-type]

    async def aquery(self, spec: QueryInput) -> Written:
        """:meth:`query` on the worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.query, spec)

    async def afeedback(self, spec: FeedbackInput) -> Written:
        """:meth:`feedback` on the worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.feedback, spec)

    def close(self) -> None:
        """Stop the worker thread (a call in progress finishes) and close the LLM cache's connection."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.llm is not None:
            self.llm.cache.close()
