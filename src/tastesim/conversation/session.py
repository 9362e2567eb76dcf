"""One multi-turn conversation between an agent and a CRS.

Each turn the agent writes its query (from recalled reasons, in its style) after its feedback on the last
reply, the CRS answers with items, and the agent decides on the shown items with the scorer. The session
ends when the agent likes a shown item (success) or after ``turns`` turns (abandoned). A failed request is
recorded with its kind and costs the turn; it never ends the run. Every user message passes a guard that
removes target titles, so the agent never reveals what it is looking for.
"""

from __future__ import annotations

import re
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from tastesim.catalog import Catalog, Decisions
from tastesim.conversation.recall import Interest
from tastesim.conversation.writers import FeedbackInput, QueryInput, QueryWriter, Style
from tastesim.crs.protocol import CRS, CRSError, CRSRequest, Message
from tastesim.memory.working import WorkingMemory
from tastesim.rng import RandomTree, Stream
from tastesim.scoring.decider import Decider

__all__ = ["Plan", "SessionResult", "Stage", "TurnRecord", "decide_shown", "hold_session", "scrub_titles"]

_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")


@dataclass
class Stage:
    """What every session shares: catalog, working memory, decision model, random tree and limits."""

    catalog: Catalog
    memory: WorkingMemory
    decider: Decider
    titles: list[str]
    tree: RandomTree
    turns: int = 5
    k: int = 10
    _row: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._row = {item: i for i, item in enumerate(self.catalog.item_ids)}

    def rows(self, items: tuple[str, ...]) -> tuple[np.ndarray, int]:
        """Catalog rows of the first ``k`` known, distinct item ids, and how many ids were unknown."""
        known = [self._row[i] for i in dict.fromkeys(items) if i in self._row]
        return np.asarray(known[: self.k], dtype=np.int64), sum(i not in self._row for i in items)

    def reason(self, table: np.ndarray, item: int) -> str:
        """Text of the first reason of ``item`` in a reason table (``tables.like`` or ``tables.dislike``)."""
        ids = table[item][table[item] >= 0]
        return self.catalog.bank.texts[int(ids[0])] if ids.size else "not quite my thing"


def decide_shown(stage: Stage, plan: Plan, turn: int, slate: np.ndarray) -> Decisions:
    """The agent's decision on the slate shown at ``turn`` (draws keyed by the session and the turn)."""
    draws = stage.tree.keyed(Stream.DECIDE, turn).rows(np.array([zlib.crc32(plan.session_id.encode())]))
    decisions, _ = stage.decider.decide(stage.memory, np.array([plan.agent]), slate.reshape(1, -1), draws)
    return decisions


def scrub_titles(text: str, titles: tuple[str, ...]) -> tuple[str, int]:
    """Replace any of ``titles`` (with or without a trailing year) in ``text``; returns the text and the count."""
    found = 0
    for title in titles:
        for form in sorted({title, _YEAR.sub("", title)}, key=len, reverse=True):  # the full title first
            if len(form) < 4:
                continue
            text, n = re.subn(rf"(?<!\w){re.escape(form)}(?!\w)", "that one", text, flags=re.IGNORECASE)
            found += n
    return text, found


@dataclass(frozen=True)
class Plan:
    """Who talks in one session, in which style, about what."""

    session_id: str
    agent: int
    style: Style
    interest: Interest
    reasons: tuple[str, ...]
    secret_titles: tuple[str, ...]


@dataclass(frozen=True)
class TurnRecord:
    """One turn as measured by the client."""

    session_id: str
    turn: int
    style: str
    latency_s: float
    overhead_s: float
    error: str
    items: int
    unknown_items: int
    clicks: int
    accepted: bool


@dataclass
class SessionResult:
    """A finished session: outcome, per-turn records and the readable transcript."""

    plan: Plan
    outcome: str = "abandoned"  # success | abandoned | error (no reply at all)
    turns_to_success: int | None = None
    recall: float | None = None
    leaks_prevented: int = 0
    shown: list[int] = field(default_factory=list)  # catalog rows shown, every turn
    clicked: list[int] = field(default_factory=list)
    records: list[TurnRecord] = field(default_factory=list)
    transcript: list[dict] = field(default_factory=list)


async def hold_session(plan: Plan, stage: Stage, crs: CRS, writer: QueryWriter) -> SessionResult:
    """Hold one conversation of at most ``stage.turns`` user turns."""
    result = SessionResult(plan)
    messages: list[Message] = []
    shown: set[int] = set()
    lead, previous, replies = "", "", 0
    tables = stage.catalog.tables
    for turn in range(1, stage.turns + 1):
        start = time.perf_counter()
        query = await writer.aquery(
            QueryInput(plan.style, plan.interest.category, plan.reasons, previous if plan.style == "paraphrase" else "")
        )
        text, leaks = scrub_titles(f"{lead} {query}".strip(), plan.secret_titles)
        result.leaks_prevented += leaks
        messages.append(Message("user", text))
        sent = time.perf_counter()
        try:
            reply = await crs.respond(CRSRequest(plan.session_id, turn, tuple(messages), stage.k))
        except CRSError as err:
            messages.pop()  # unanswered: the next turn asks again
            record = TurnRecord(plan.session_id, turn, plan.style, time.perf_counter() - sent, sent - start,
                                err.kind, 0, 0, 0, False)  # fmt: skip
            result.records.append(record)
            result.transcript.append({"turn": turn, "user": text, "error": err.kind, "detail": err.detail[:200]})
            previous = query
            continue
        got = time.perf_counter()
        replies += 1
        messages.append(Message("assistant", reply.text, reply.items))
        slate, unknown = stage.rows(reply.items)
        decisions = decide_shown(stage, plan, turn, slate)
        shown.update(int(i) for i in slate)
        result.shown.extend(int(i) for i in slate)
        result.clicked.extend(int(i) for i in slate[decisions.click[0]])
        liked, disliked = np.flatnonzero(decisions.like[0]), np.flatnonzero(decisions.dislike[0])
        if liked.size:
            spec = FeedbackInput("accept", stage.reason(tables.like, int(slate[liked[0]])))
        elif disliked.size:
            spec = FeedbackInput("reject", stage.reason(tables.dislike, int(slate[disliked[0]])))
        else:
            spec = FeedbackInput("pass", plan.reasons[0] if plan.reasons else plan.interest.category.lower())
        feedback, leaks = scrub_titles(await writer.afeedback(spec), plan.secret_titles)
        result.leaks_prevented += leaks
        record = TurnRecord(plan.session_id, turn, plan.style, got - sent, (sent - start) + (time.perf_counter() - got),
                            "", len(slate), unknown, int(decisions.click.sum()), bool(liked.size))  # fmt: skip
        result.records.append(record)
        result.transcript.append(
            {
                "turn": turn,
                "user": text,
                "crs": {"text": reply.text, "question": reply.question, "items": list(reply.items)},
                "shown_titles": [stage.titles[i] for i in slate],
                "clicked": [stage.titles[i] for i in slate[decisions.click[0]]],
                "liked": [stage.titles[i] for i in slate[decisions.like[0]]],
            }
        )
        if liked.size:
            result.outcome, result.turns_to_success = "success", turn
            result.transcript.append({"turn": turn, "user": feedback, "final": True})
            break
        lead, previous = feedback, query
    if result.outcome != "success" and replies == 0:
        result.outcome = "error"
    if plan.interest.targets:
        result.recall = len(shown & set(plan.interest.targets)) / len(plan.interest.targets)
    return result
