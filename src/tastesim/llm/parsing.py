"""Lenient parsing of real LLM replies into reasons.

Two reply shapes are understood: a JSON object (the chat prompts ask for one; it may come fenced, with
prose around it, truncated, with missing fields or wrong types) and the few-shot line format the
completion prompts teach (``Category: ...``, ``Like: reason | kw, kw``, ``Dislike: ...``). Whatever the
reply says, parsing never raises: it returns an :class:`Analysis`, empty when nothing usable was found.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from tastesim.catalog.profile import Reason
from tastesim.prompts import Prompt
from tastesim.text import STOP_WORDS, normalise_keyword, tokenise

__all__ = ["FEWSHOT_STOPS", "Analysis", "clean_keywords", "distinct_reasons", "fewshot_stops", "parse_reply"]

MAX_REASONS = 3
MAX_KEYWORDS = 3
_MAX_REASON_CHARS = 80


@dataclass
class Analysis:
    """What one reply contributed: an optional category and like/dislike reasons (keywords normalised)."""

    category: str | None = None
    like: list[Reason] = field(default_factory=list)
    dislike: list[Reason] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """At least one reason was found."""
        return bool(self.like or self.dislike)


class _ReasonModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    reason: str
    evidence: str = ""
    keywords: list[str] = []

    @field_validator("reason", "evidence", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str:
        if isinstance(value, list):
            value = " ".join(map(str, value))
        return "" if value is None else str(value)

    @field_validator("keywords", mode="before")
    @classmethod
    def _words(cls, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            return re.split(r"[,;|]", value)
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def clean_keywords(words: list[str], reason: str) -> tuple[str, ...]:
    """Normalise keywords (lower case, lemma-ish, stop words and duplicates dropped, 1-2 words each); when
    none survive, take content words of the reason text itself. At most three."""
    out: list[str] = []
    for word in words:
        parts = [normalise_keyword(t) for t in tokenise(word) if t not in STOP_WORDS]
        parts = [p for p in parts if len(p) > 2 and p not in STOP_WORDS][:2]
        if parts:
            out.append(" ".join(parts))
    if not out:
        out = [normalise_keyword(t) for t in tokenise(reason) if t not in STOP_WORDS and len(t) > 2]
    return tuple(dict.fromkeys(k for k in out if k not in STOP_WORDS))[:MAX_KEYWORDS]


def _reason(text: str, evidence: str, keywords: list[str]) -> Reason | None:
    text = re.sub(r"\s+", " ", text).strip(" .-*\"'")
    if len(text) < 3 or not any(c.isalpha() for c in text):
        return None
    text = text[:_MAX_REASON_CHARS].lower()
    cleaned = clean_keywords(keywords, text)
    if not cleaned:  # only stop words, e.g. a reply cut after "too"
        return None
    return Reason(text, cleaned, evidence.strip()[:200])


def _json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (fences and surrounding prose ignored; a truncated tail closed)."""
    start = text.find("{")
    if start < 0:
        return None
    body = text[start:]
    decoder = json.JSONDecoder()
    for candidate in (body, _close_truncated(body)):
        try:
            value, _ = decoder.raw_decode(re.sub(r",\s*([}\]])", r"\1", candidate))
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _close_truncated(body: str) -> str:
    """Close strings, lists and objects left open by a reply cut at its token limit."""
    stack, in_string, escaped = [], False, False
    for ch in body:
        if in_string:
            escaped = ch == "\\" and not escaped
            if ch == '"' and not escaped:
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    tail = body.rstrip().rstrip(",:")
    if in_string:
        tail += '"'
    return re.sub(r',\s*"[^"]*"$', "", tail) + "".join(reversed(stack))


def _from_json(data: dict[str, Any]) -> Analysis:
    out = Analysis(category=str(data["category"]).strip() or None if data.get("category") else None)
    for polarity in ("like", "dislike"):
        rows = data.get(polarity) or data.get(f"{polarity}s") or []
        for raw in rows if isinstance(rows, list) else [rows]:
            entry = {"reason": raw} if isinstance(raw, str) else raw
            if not isinstance(entry, dict):
                continue
            row = {"reason": entry.get("reason") or entry.get("text") or ""} | {
                k: entry[k] for k in ("evidence", "keywords") if k in entry
            }
            try:
                model = _ReasonModel.model_validate(row)
            except ValidationError:
                continue
            reason = _reason(model.reason, model.evidence, model.keywords)
            if reason is not None:
                getattr(out, polarity).append(reason)
    return out


# A few-shot reply ends where the model starts inventing the next example.
FEWSHOT_STOPS = ("\n\n", "\nItem", "\nCategories", "\nDescription", "\nReview")


def fewshot_stops(prompt: Prompt) -> list[str]:
    """Stop strings of a few-shot completion: the next invented example, or any newline for a one-line reply."""
    return [*FEWSHOT_STOPS, "\n"] if prompt.one_line_reply else list(FEWSHOT_STOPS)


_NEXT_EXAMPLE = re.compile(r"^\s*(item|categories|description|review)\b", re.IGNORECASE)
_LINE = re.compile(r"^\s*[-*]?\s*(?=(?:category|like|dislike)s?\s*:)", re.IGNORECASE)
_FIELD = re.compile(r"\b(category|like|dislike)s?\s*:", re.IGNORECASE)


def _from_lines(text: str) -> Analysis:
    """Lines ``Like: reason | kw, kw`` (one reason each) or ``Like: a; b. Dislike: c; d`` (several per line)."""
    out = Analysis()
    for line in text.splitlines():
        if _NEXT_EXAMPLE.match(line):
            break
        if not _LINE.match(line):
            continue
        fields = list(_FIELD.finditer(line))
        for field_match, following in zip(fields, [*fields[1:], None], strict=True):
            key = field_match.group(1).lower()
            value = line[field_match.end() : following.start() if following else len(line)].strip()
            if key == "category":
                out.category = out.category or (value.strip(" .") or None)
                continue
            reason_text, bar, words = value.partition("|")
            pieces = [(reason_text, re.split(r"[,;]", words))] if bar else [(p, []) for p in value.split(";")]
            for text_part, keywords in pieces:
                reason = _reason(text_part, "", keywords)
                if reason is not None:
                    getattr(out, key).append(reason)
    return out


def parse_reply(text: str, prefix: str = "") -> Analysis:
    """Parse a reply; ``prefix`` is prompt text the reply continues (``"Category:"`` for few-shot prompts).

    Reasons beyond three per polarity and repeated reasons are dropped. Never raises.
    """
    data = _json_object(text)
    analysis = _from_json(data) if data is not None else _from_lines(prefix + text)
    analysis.like = distinct_reasons(analysis.like)[:MAX_REASONS]
    analysis.dislike = distinct_reasons(analysis.dislike)[:MAX_REASONS]
    return analysis


def distinct_reasons(reasons: list[Reason]) -> list[Reason]:
    """Reasons with distinct texts, in order of first appearance."""
    seen: dict[str, Reason] = {}
    for reason in reasons:
        seen.setdefault(reason.text, reason)
    return list(seen.values())
