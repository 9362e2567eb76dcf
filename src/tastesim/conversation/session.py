"""One multi-turn conversation between an agent and a CRS, in the target-item protocol (iEvaLM).

Each session's user looks for one target: an item its real user liked in the held-out part of the data.
Every turn the user writes a message from the target's shared reasons and its own memory (never the
target's title or unique names: every message passes the leak check, and a leaky one is rewritten, or
replaced by the template writer's), the CRS answers with up to ``rank_k`` items, of which the user sees the
first ``k`` and decides on them with the decision model. The target's rank in the reply is recorded each
turn, for recall@1/10/50 after each turn.

The session ends in **success** when the target is among the items shown; the user **leaves** after
``plan.patience`` turns in a row without progress (the target ranked higher than before, or a shown item
liked); it is **abandoned** after ``turns`` turns; **error** when no request was answered. A shown item
the user likes that is not the target is a substitute: the user says so (feedback from the decision
model) and keeps looking. With ``protocol: liked`` (easy mode, kept for comparison) any liked item ends the
session in success. A failed request is recorded with its kind and costs the turn.

Harder users (``plan.behaviour``): ``changes_mind`` switches to another target at ``plan.shock_turn``;
``contradictory`` adds a constraint that the target breaks ("but nothing with ..."); ``negative_only``
says only what is wrong with what it is shown, after its first request.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tastesim.catalog import Catalog, Decisions
from tastesim.conversation.leak import LeakCheck
from tastesim.conversation.writers import FeedbackInput, QueryInput, QueryWriter, Style, TemplateWriter, Written
from tastesim.crs.protocol import CRS, CRSError, CRSRequest, Message
from tastesim.memory.working import WorkingMemory
from tastesim.rng import RandomTree, Stream
from tastesim.scoring.decider import Decider

__all__ = [
    "BEHAVIOURS",
    "Goal",
    "Plan",
    "SessionResult",
    "Stage",
    "TurnRecord",
    "decide_shown",
    "hold_session",
]

BEHAVIOURS = ("cooperative", "changes_mind", "contradictory", "negative_only")
Behaviour = Literal["cooperative", "changes_mind", "contradictory", "negative_only"]
Protocol = Literal["target", "liked"]
_CHANGED = "Actually, I changed my mind."


@dataclass
class Stage:
    """What every session shares: catalog, memory, decision model, random tree, leak check and limits.

    Attributes:
        k: Items the user sees of each reply.
        rank_k: Items asked of the CRS each turn (recall@k is measured up to it).
    """

    catalog: Catalog
    memory: WorkingMemory
    decider: Decider
    titles: list[str]
    tree: RandomTree
    leak: LeakCheck | None = None
    turns: int = 5
    k: int = 10
    rank_k: int = 50
    protocol: Protocol = "target"
    _row: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._row = {item: i for i, item in enumerate(self.catalog.item_ids)}

    def rows(self, items: tuple[str, ...]) -> tuple[np.ndarray, int]:
        """Catalog rows of the first ``rank_k`` known, distinct item ids, and how many ids were unknown."""
        known = [self._row[i] for i in dict.fromkeys(items) if i in self._row]
        return np.asarray(known[: self.rank_k], dtype=np.int64), sum(i not in self._row for i in items)

    def reasons(self, table: np.ndarray, item: int, n: int = 2) -> tuple[str, ...]:
        """Texts of the first ``n`` reasons of ``item`` in a reason table (``tables.like``/``tables.dislike``)."""
        ids = table[item][table[item] >= 0][:n]
        return tuple(self.catalog.bank.texts[int(i)] for i in ids) or ("not quite my thing",)


def decide_shown(stage: Stage, plan: Plan, turn: int, slate: np.ndarray) -> Decisions:
    """The agent's decision on the slate shown at ``turn`` (draws keyed by the session and the turn)."""
    draws = stage.tree.keyed(Stream.DECIDE, turn).rows(np.array([zlib.crc32(plan.session_id.encode())]))
    decisions, _ = stage.decider.decide(stage.memory, np.array([plan.agent]), slate.reshape(1, -1), draws)
    return decisions


@dataclass(frozen=True)
class Goal:
    """A target: its catalog row and category, and the reasons the user asks for it with."""

    item: int
    category: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """Who talks in one session, in which style and behaviour, looking for what."""

    session_id: str
    agent: int
    style: Style
    goals: tuple[Goal, ...]
    patience: int = 5
    behaviour: Behaviour = "cooperative"
    shock_turn: int = 0  # changes_mind: the turn from which goals[1] is the target
    avoid: str = ""  # contradictory: what the user says it does not want, which the target has

    def goal(self, turn: int) -> Goal:
        """The target at ``turn``."""
        return self.goals[1] if self.shock_turn and turn >= self.shock_turn and len(self.goals) > 1 else self.goals[0]


@dataclass(frozen=True)
class TurnRecord:
    """One turn as measured by the client; ``rank`` is the target's (1-based, 0 when not in the reply)."""

    session_id: str
    turn: int
    style: str
    behaviour: str
    latency_s: float
    overhead_s: float
    error: str
    items: int
    unknown_items: int
    rank: int
    clicks: int
    liked: int
    found: bool
    leaky: bool


@dataclass
class SessionResult:
    """A finished session: outcome, per-turn target ranks and records, and the readable transcript.

    Attributes:
        ranks: Per turn played, the rank of that turn's target in the reply (``None`` when absent or failed).
        liked_any: The user liked a shown item (target or not) at some turn: the easy-mode figure.
        substitutes: Shown items other than the target that the user liked.
        messages, leaky, rewritten, replaced: User messages sent; those the leak check found leaky before
            rewriting; those rewritten clean; those replaced by the template writer's message.
        residual: Messages sent that still leaked (0 unless the template itself leaks).
    """

    plan: Plan
    outcome: str = "abandoned"  # success | left | abandoned | error
    turns_to_success: int | None = None
    ranks: list[int | None] = field(default_factory=list)
    liked_any: bool = False
    substitutes: int = 0
    messages: int = 0
    leaky: int = 0
    rewritten: int = 0
    replaced: int = 0
    residual: int = 0
    shown: list[int] = field(default_factory=list)
    records: list[TurnRecord] = field(default_factory=list)
    transcript: list[dict] = field(default_factory=list)

    def send(self, stage: Stage, text: str, item: int, fallback: str) -> str:
        """``text`` made safe to send for target ``item``: rewritten, or replaced by ``fallback``; counted."""
        self.messages += 1
        if stage.leak is None:
            return text
        clean, before, after = stage.leak.rewrite(text, item)
        if before.leaky:
            self.leaky += 1
            if after.leaky:
                clean, _, after = stage.leak.rewrite(fallback, item)
                self.replaced += 1
            else:
                self.rewritten += 1
        self.residual += after.leaky
        return clean


def _feedback(stage: Stage, plan: Plan, goal: Goal, slate: np.ndarray, decisions: Decisions | None) -> FeedbackInput:
    """What the user says about the items shown (their reasons, never their titles)."""
    tables = stage.catalog.tables
    wants = goal.reasons[:2]
    if decisions is None:  # nothing of the catalog was shown
        return FeedbackInput("negative", ("nothing I know",)) if plan.behaviour == "negative_only" else (
            FeedbackInput("pass", (), wants))  # fmt: skip
    liked, disliked = np.flatnonzero(decisions.like[0]), np.flatnonzero(decisions.dislike[0])
    if plan.behaviour == "negative_only":
        worst = int(slate[disliked[0]] if disliked.size else slate[0])
        return FeedbackInput("negative", stage.reasons(tables.dislike, worst))
    if liked.size:
        return FeedbackInput("like", stage.reasons(tables.like, int(slate[liked[0]])), wants)
    if disliked.size:
        return FeedbackInput("reject", stage.reasons(tables.dislike, int(slate[disliked[0]])), wants)
    shown = tuple(dict.fromkeys(r for i in slate[:2] for r in stage.reasons(tables.like, int(i), 1)))
    return FeedbackInput("pass", shown, wants)


async def _query(plan: Plan, stage: Stage, writer: QueryWriter, turn: int, previous: str) -> tuple[Written, str]:
    """The turn's request and its template twin (the leak fallback)."""
    goal = plan.goal(turn)
    spec = QueryInput(plan.style, goal.category, goal.reasons, previous if plan.style == "paraphrase" else "")
    written = await writer.aquery(spec)
    template = TemplateWriter().query(spec)
    if plan.avoid:
        clause = f" But nothing with {plan.avoid}."
        return Written(written.text + clause, written.source, written.verdict, written.raw), template + clause
    return written, template


async def hold_session(plan: Plan, stage: Stage, crs: CRS, writer: QueryWriter) -> SessionResult:  # noqa: PLR0915
    """Hold one conversation of at most ``stage.turns`` user turns."""
    result = SessionResult(plan)
    messages: list[Message] = []
    lead, lead_template, previous, replies, best, idle = "", "", "", 0, 10**9, 0
    for turn in range(1, stage.turns + 1):
        goal = plan.goal(turn)
        start = time.perf_counter()
        entry: dict = {"turn": turn}
        leaks = result.leaky
        if turn == plan.shock_turn:
            previous, best = "", 10**9  # a new target: its rank is progress from scratch
            lead, lead_template = f"{lead} {_CHANGED}".strip(), f"{lead_template} {_CHANGED}".strip()
        if plan.behaviour == "negative_only" and lead:
            text = result.send(stage, lead, goal.item, lead_template)  # after its first request: only complaints
        else:
            written, template = await _query(plan, stage, writer, turn, previous)
            fallback = f"{lead_template} {template}".strip()
            text = result.send(stage, f"{lead} {written.text}".strip(), goal.item, fallback)
            entry["source"] = written.source
            previous = written.text
        entry["user"] = text
        messages.append(Message("user", text))
        sent = time.perf_counter()
        try:
            reply = await crs.respond(CRSRequest(plan.session_id, turn, tuple(messages), stage.rank_k))
        except CRSError as err:
            messages.pop()  # unanswered: the next turn asks again
            result.ranks.append(None)
            result.records.append(TurnRecord(plan.session_id, turn, plan.style, plan.behaviour,
                                             time.perf_counter() - sent, sent - start, err.kind, 0, 0, 0, 0, 0,
                                             False, result.leaky > leaks))  # fmt: skip
            result.transcript.append(entry | {"error": err.kind, "detail": err.detail[:200]})
            continue
        got = time.perf_counter()
        replies += 1
        ranked, unknown = stage.rows(reply.items)
        slate = ranked[: stage.k]
        where = np.flatnonzero(ranked == goal.item)
        rank = int(where[0]) + 1 if where.size else None
        result.ranks.append(rank)
        messages.append(Message("assistant", reply.text, tuple(stage.catalog.item_ids[i] for i in slate)))
        decisions = decide_shown(stage, plan, turn, slate) if slate.size else None
        liked = decisions.like[0] if decisions is not None else np.zeros(0, dtype=bool)
        clicks = int(decisions.click.sum()) if decisions is not None else 0
        found = goal.item in slate.tolist()
        result.shown.extend(int(i) for i in slate)
        result.liked_any |= bool(liked.any())
        result.substitutes += int(liked[slate != goal.item].sum())
        result.records.append(TurnRecord(plan.session_id, turn, plan.style, plan.behaviour, got - sent, sent - start,
                                         "", len(ranked), unknown, rank or 0, clicks,
                                         int(liked.sum()), found, result.leaky > leaks))  # fmt: skip
        result.transcript.append(
            entry
            | {
                "crs": {"text": reply.text[:300], "question": reply.question, "items": list(reply.items[: stage.k])},
                "target_rank": rank,
                "shown_titles": [stage.titles[i] for i in slate],
                "liked": [stage.titles[i] for i in slate[liked]],
            }
        )
        success = found or (stage.protocol == "liked" and bool(liked.any()))
        progress = success or bool(liked.any()) or (rank is not None and rank < best)
        best = min(best, rank or best)
        idle = 0 if progress else idle + 1
        if success:
            result.outcome, result.turns_to_success = "success", turn
            reasons = goal.reasons if found else stage.reasons(stage.catalog.tables.like, int(slate[liked][0]))
            spec = FeedbackInput("accept", reasons)
            final = await writer.afeedback(spec)
            text = result.send(stage, final.text, goal.item, TemplateWriter().feedback(spec))
            result.transcript.append({"turn": turn, "user": text, "source": final.source, "final": True})
            break
        if idle >= plan.patience:
            result.outcome = "left"
            break
        if turn < stage.turns:
            spec = _feedback(stage, plan, goal, slate, decisions)
            lead, lead_template = (await writer.afeedback(spec)).text, TemplateWriter().feedback(spec)
    if result.outcome not in ("success", "left") and replies == 0:
        result.outcome = "error"
    return result
