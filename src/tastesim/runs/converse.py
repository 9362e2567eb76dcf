"""Run a conversation scenario: many concurrent sessions against one or several CRSs, into an output folder.

Outputs: ``scenario.yaml`` (resolved), ``transcripts.jsonl`` (a sample of whole conversations, appended as
sessions end), ``turns.parquet`` (one row per turn: CRS, latency, client overhead, error kind, target rank,
likes), ``report.json`` (per CRS: recall@1/10/50 after each turn, success and liked-anything rates, results
by style and behaviour, leak rate, writer grounding, latency p50/p95/p99, throughput, errors by kind; with
``compare``, one report per CRS under ``by_crs`` and the side-by-side ``table``), ``summary.json`` (headline
figures plus the report), ``memory/`` (the Chroma store recalled through) and ``crs-<name>.log`` (a built-in
CRS's output). Faults of a CRS are counted, never fatal; each CRS's sessions are bounded by
``conversation.max_seconds``. CRSs are held to the same sessions one after the other, never at once, so
they do not compete for the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import httpx
import numpy as np
import pandas as pd

from tastesim.conversation.grounding import GroundingCheck
from tastesim.conversation.leak import LeakCheck
from tastesim.conversation.metrics import comparison_rows, stress_report, turn_table
from tastesim.conversation.recall import fill_store, recall_from_store, strongest_likes
from tastesim.conversation.session import BEHAVIOURS, Goal, Plan, SessionResult, Stage, hold_session
from tastesim.conversation.writers import STYLES, LLMWriter, QueryWriter, Writer
from tastesim.crs.http import HttpCRS
from tastesim.crs.names import TitleIndex
from tastesim.memory.store import MemoryStore
from tastesim.memory.working import LIKE
from tastesim.memory.writer import RecordFactory
from tastesim.paths import atomic_write, atomic_write_text, default_cache_dir
from tastesim.rng import RandomTree, Stream
from tastesim.runs.outcome import Progress, RunError, RunResult, quiet
from tastesim.scenario import ConversationConfig, CRSEntry, LlamaCppSettings, Scenario
from tastesim.world.build import Parts, build_parts, load_scenario_dataset, profiles_for, scenario_decider, store_spec

__all__ = ["WRITER_MODEL", "make_check", "make_llm_writer", "make_writer", "plan_sessions", "run_conversations"]

_CRS_START_S = 600  # a built-in CRS may embed the whole catalog, or load a model, on its first start
SHARED_REASON = 0.01  # a target's reason a user may say is shared by this share of the catalog's items at least
TARGET_REASONS = 2  # reasons of the target in a query; the rest come from the user's own memory
WRITER_MODEL = "shipped"  # the writer's embedded model: SmolLM2's Q4_1 file as shipped (see README)
WRITER_REPEAT_PENALTY = 1.0  # a penalty on repeated tokens also penalises copying the reasons from the prompt


def make_check(scenario: Scenario) -> GroundingCheck:
    """The grounding check with the scenario's embedder when it is MiniLM (the thresholds are tuned for it);
    with the hashing test double, coverage is checked by words only."""
    from tastesim.embedding import MiniLMEmbedder, make_embedder

    embedder = make_embedder(scenario.analyser.embedder)
    return GroundingCheck(embedder.embed if embedder.name == MiniLMEmbedder.name else None)


def make_llm_writer(scenario: Scenario, replies: Path | None = None) -> LLMWriter:
    """The scenario's LLM writer through the reply cache ``replies`` (``llm-replies.sqlite`` in the cache folder).

    With the embedded backend and the v2 prompts, unset options default to :data:`WRITER_MODEL` and
    :data:`WRITER_REPEAT_PENALTY`; the v1 prompts keep the first writer's backend defaults, to reproduce it.
    """
    from tastesim.llm.backend import make_backend
    from tastesim.llm.cache import ReplyCache

    cfg = scenario.conversation
    assert cfg is not None
    cache = scenario.cache_dir or default_cache_dir()
    settings = cfg.llm_settings
    if isinstance(settings, LlamaCppSettings):
        update: dict = {"cache_dir": settings.cache_dir or cache}
        if cfg.writer_prompts == "v2":
            if "model" not in cfg.llm_options:  # an explicit null picks the analyser's Q4_0 copy
                update["model"] = WRITER_MODEL
            if "repeat_penalty" not in cfg.llm_options:
                update["repeat_penalty"] = WRITER_REPEAT_PENALTY
        settings = settings.model_copy(update=update)
    backend = make_backend(settings)
    cache_file = replies or cache / "llm-replies.sqlite"
    return LLMWriter(backend, ReplyCache(cache_file), seed=scenario.seed, prompts=cfg.writer_prompts)


def make_writer(scenario: Scenario, check: GroundingCheck | None = None, llm: LLMWriter | None = None) -> Writer:
    """The scenario's writer: templates, or the guarded LLM writer; every message checked."""
    cfg = scenario.conversation
    assert cfg is not None
    check = check or make_check(scenario)
    if cfg.writer == "template":
        return Writer(check, seed=scenario.seed)
    return Writer(check, llm or make_llm_writer(scenario), seed=scenario.seed, guard=cfg.writer_guard)


def _liked_holdout(parts: Parts, like_threshold: float) -> list[np.ndarray]:
    """Per agent, the held-out items its real user rated at or above ``like_threshold``."""
    inter = parts.dataset.interactions
    liked = inter[inter["rating"] >= like_threshold]
    rows = parts.dataset.item_index(liked["item"].tolist())
    by_user = dict(iter(pd.Series(rows).groupby(liked["user"].to_numpy())))
    out = []
    for user, held in zip(parts.population.users, parts.population.holdout, strict=True):
        mine = by_user.get(user)
        out.append(held[np.isin(held, mine.to_numpy())] if mine is not None else held[:0])
    return out


def _shares(rng: np.random.Generator, shares: dict[str, float], order: tuple[str, ...], n: int) -> list[str]:
    names = [s for s in order if shares.get(s, 0) > 0]
    p = np.array([shares[s] for s in names], dtype=np.float64)
    return [names[i] for i in rng.choice(len(names), size=n, p=p / p.sum())]


def _draw(scenario: Scenario, liked: list[np.ndarray]) -> tuple[np.ndarray, list[str], list[str]]:
    """Each session's agent (one with a held-out liked item: a target), style and behaviour, by share."""
    cfg = scenario.conversation
    assert cfg is not None
    eligible = np.flatnonzero([held.size > 0 for held in liked])
    if eligible.size == 0:
        raise RunError("no agent has a held-out liked item to look for: lower population.like_threshold")
    tree = RandomTree(scenario.seed)
    rng = tree.generator(Stream.CONVERSATION_PLAN)
    agents = rng.choice(eligible, size=cfg.sessions, replace=cfg.sessions > eligible.size)
    styles = _shares(rng, cfg.styles, STYLES, cfg.sessions)
    behaviours = _shares(tree.generator(Stream.BEHAVIOUR), cfg.behaviours, BEHAVIOURS, cfg.sessions)
    return agents, styles, behaviours


class _Planner:
    """Goals of sessions: a target item, and the reasons to ask for it with."""

    def __init__(self, scenario: Scenario, parts: Parts, store: MemoryStore | None) -> None:
        self.cfg = scenario.conversation
        self.parts = parts
        self.store = store
        tables = parts.catalog.tables
        ids = tables.like[tables.like >= 0]
        least = max(3, int(np.ceil(SHARED_REASON * len(parts.catalog.item_ids))))
        self.shared = np.bincount(ids, minlength=len(parts.catalog.bank.texts)) >= least

    def memory(self, agent: int, category: str, mask: int) -> list[str]:
        """The agent's strongest like reasons, memories of ``category`` first."""
        n = self.cfg.reasons
        if self.store is not None:
            return recall_from_store(self.store, agent, category, n)
        slots = strongest_likes(self.parts.memory, agent, mask, n)
        return [self.parts.catalog.bank.texts[int(r)] for r in self.parts.memory.reason[agent, slots]]

    def usable(self, item: int) -> list[int]:
        """The item's like reasons shared by enough items (:data:`SHARED_REASON`) to point at no one item: an
        item's own keyphrases ("submarine", "sci-fi war") would name it to a CRS that indexes the same text."""
        row = self.parts.catalog.tables.like[item]
        return [int(r) for r in row[row >= 0] if self.shared[r]]

    def goal(self, agent: int, item: int) -> Goal:
        """Target ``item``: up to :data:`TARGET_REASONS` of its shared like reasons (those the agent remembers
        first), then the agent's strongest memories."""
        tables, texts = self.parts.catalog.tables, self.parts.catalog.bank.texts
        category = tables.categories[int(tables.primary[item])]
        memory = self.parts.memory
        own = set(memory.reason[agent][(memory.reason[agent] >= 0) & (memory.polarity[agent] == LIKE)].tolist())
        ids = sorted(self.usable(item), key=lambda r: r not in own)
        reasons = [texts[r] for r in ids][: min(TARGET_REASONS, self.cfg.reasons)]
        for text in self.memory(agent, category, 1 << (int(tables.primary[item]) % 63)):
            if len(reasons) >= self.cfg.reasons:
                break
            if text not in reasons:
                reasons.append(text)
        return Goal(item, category, tuple(reasons) or (category.lower(),))

    def second_target(self, first: int, held: np.ndarray, rng: np.random.Generator) -> int:
        """Another target for a user who changes its mind: a liked held-out item of another category if there
        is one, else another liked held-out item, else a popular item of another category."""
        primary = self.parts.catalog.tables.primary
        other = held[(held != first) & (primary[held] != primary[first])]
        if other.size == 0:
            other = held[held != first]
        if other.size == 0:
            popular = np.argsort(self.parts.catalog.self_information, kind="stable")[:200]
            other = popular[primary[popular] != primary[first]]
        return int(rng.choice(other))


def plan_sessions(scenario: Scenario, parts: Parts, store: MemoryStore | None = None) -> list[Plan]:
    """Draw each session's agent, style, behaviour, patience and target(s), and the reasons to ask with.

    Memory reasons are read through ``store`` when given (it must hold the agents' memories, see
    :func:`~tastesim.conversation.recall.fill_store`), else from working memory.
    """
    cfg = scenario.conversation
    assert cfg is not None
    tree = RandomTree(scenario.seed)
    liked = _liked_holdout(parts, scenario.population.like_threshold)
    agents, styles, behaviours = _draw(scenario, liked)
    planner = _Planner(scenario, parts, store)
    plans = []
    for i, (agent, style, behaviour) in enumerate(zip(agents.tolist(), styles, behaviours, strict=True)):
        rng = tree.generator(Stream.INTEREST, i)
        held = liked[agent]
        first = int(rng.choice(held))
        goals = [planner.goal(agent, first)]
        shock, avoid = 0, ""
        if behaviour == "changes_mind" and cfg.turns >= 2:
            goals.append(planner.goal(agent, planner.second_target(first, held, rng)))
            shock = int(rng.integers(2, cfg.turns + 1)) if cfg.turns > 2 else 2
        if behaviour == "contradictory":
            texts = parts.catalog.bank.texts
            spare = [texts[r] for r in planner.usable(first) if texts[r] not in goals[0].reasons]
            avoid = spare[0] if spare else goals[0].reasons[0]
        patience = 1 + int(tree.generator(Stream.PATIENCE, key=agent).poisson(cfg.patience - 1))
        plans.append(
            Plan(f"s{i:06d}", agent, style, tuple(goals), patience, behaviour, shock, avoid)  # type: ignore[arg-type]
        )
    return plans


def _store(scenario: Scenario, parts: Parts, out: Path, progress: Progress) -> MemoryStore | None:
    """With ``recall: store``, the run's Chroma store holding the memories of every agent that will talk."""
    cfg = scenario.conversation
    assert cfg is not None
    if cfg.recall != "store":
        return None
    progress("storing memories", 0, 1)
    tables = parts.catalog.tables
    store = replace(store_spec(scenario, out), shards=1).open()  # filled here, not by writer processes
    agents, _, _ = _draw(scenario, _liked_holdout(parts, scenario.population.like_threshold))
    factory = RecordFactory(
        parts.catalog.bank.texts, parts.catalog.bank.vectors, parts.catalog.item_ids,
        [tables.categories[c] for c in tables.primary],
    )  # fmt: skip
    fill_store(store, parts.memory, agents, factory)
    return store


@contextlib.contextmanager
def _crs_url(entry: CRSEntry, out: Path) -> Iterator[str]:
    """The CRS endpoint: the entry's URL, or a built-in CRS served by ``tastesim serve-crs --kind KIND``.

    A built-in CRS runs as its own process on a free loopback port, so the server does not share a GIL
    with the sessions it is measured by; it reads the resolved ``scenario.yaml`` of the run folder.
    """
    if entry.url:
        yield entry.url
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = "from tastesim.cli import main; main()"
    log_path = out / f"crs-{entry.name}.log"
    args = ["serve-crs", str(out / "scenario.yaml"), "--port", str(port), "--kind", str(entry.builtin)]
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, "-c", command, *args], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _CRS_START_S
        while not _up(base):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RunError(f"the built-in {entry.builtin} CRS did not start; see {log_path}")
            time.sleep(0.3)
        yield base + ("/v1/chat/completions" if entry.mode == "openai" else "/recommend")
    finally:
        server.terminate()
        server.wait(timeout=30)


def _up(base: str) -> bool:
    """Whether the server at ``base`` answers its health check."""
    try:
        return httpx.get(base + "/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _api_key(entry: CRSEntry) -> str | None:
    """The entry's API key, read from the environment variable it names."""
    if entry.api_key_env is None:
        return None
    key = os.environ.get(entry.api_key_env, "").strip()
    if not key:
        raise RunError(f"CRS {entry.name!r}: set the environment variable {entry.api_key_env} to its API key")
    return key


async def _hold_all(
    plans: list[Plan],
    stage: Stage,
    crs: HttpCRS,
    writer: QueryWriter,
    *,
    finished: Callable[[SessionResult], None],
    cfg: ConversationConfig,
) -> None:
    queue = iter(plans)

    async def worker() -> None:
        for plan in queue:
            finished(await hold_session(plan, stage, crs, writer))

    workers = [asyncio.create_task(worker()) for _ in range(min(cfg.concurrency, len(plans)))]
    _, pending = await asyncio.wait(workers, timeout=cfg.max_seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in workers:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # a bug in tastesim, not a CRS fault


def _leak_check(scenario: Scenario, parts: Parts, titles: list[str]) -> LeakCheck:
    from tastesim.embedding import MiniLMEmbedder, make_embedder

    embedder = make_embedder(scenario.analyser.embedder)
    texts = [str(t) for t in parts.dataset.items["text"]]
    embed = embedder.embed if embedder.name == MiniLMEmbedder.name else None
    return LeakCheck(titles, texts, embed, allowed=parts.catalog.bank.texts)


@dataclass
class _Run:
    """What each CRS of a run is held to: the same plans, stage, check, LLM writer and transcript sample."""

    scenario: Scenario
    out: Path
    plans: list[Plan]
    stage: Stage
    check: GroundingCheck
    llm: LLMWriter | None
    sample: set[str]
    log: TextIO
    progress: Progress

    def hold(self, entry: CRSEntry, api_key: str | None, label: str) -> tuple[dict, pd.DataFrame]:
        """Hold every session against ``entry``; its report and turn table."""
        cfg = self.scenario.conversation
        assert cfg is not None
        results: list[SessionResult] = []
        writer = make_writer(self.scenario, self.check, self.llm)

        def finished(result: SessionResult) -> None:
            results.append(result)
            if result.plan.session_id in self.sample:
                self.log.write(json.dumps(_transcript(result, self.stage, entry.name), ensure_ascii=False) + "\n")
                self.log.flush()
            self.progress(label, len(results), len(self.plans))

        titles = TitleIndex(self.stage.catalog.item_ids, self.stage.titles) if entry.mode == "chat" else None
        self.progress(label, 0, len(self.plans))

        async def talk(url: str) -> float:
            async with HttpCRS(url, mode=entry.mode, model=entry.model, timeout_s=cfg.timeout_s, retries=cfg.retries,
                               concurrency=cfg.concurrency, api_key=api_key, titles=titles) as crs:  # fmt: skip
                started = time.perf_counter()
                await _hold_all(self.plans, self.stage, crs, writer, finished=finished, cfg=cfg)
                return time.perf_counter() - started

        try:
            with _crs_url(entry, self.out) as url:
                wall = asyncio.run(talk(url))
        finally:
            writer.close()
        report = stress_report(results, planned=len(self.plans), wall_s=wall, turns=cfg.turns, writer=writer,
                               protocol=cfg.protocol)  # fmt: skip
        report["crs"] = {"name": entry.name, "url": entry.url or f"built-in {entry.builtin}", "mode": entry.mode}
        return report, turn_table(results).assign(crs=entry.name)


def run_conversations(scenario: Scenario, out: Path, progress: Progress = quiet) -> RunResult:
    """Run the scenario's conversations into ``out`` (a new folder) and return the headline figures."""
    cfg = scenario.conversation
    if cfg is None:
        raise RunError("the scenario has no conversation section")
    out = Path(out)
    if (out / "scenario.yaml").exists():
        raise RunError(f"{out} already holds a run: choose another --out")
    targets = cfg.targets
    keys = {entry.name: _api_key(entry) for entry in targets}  # a missing key stops the run before it starts
    progress("loading data", 0, 1)
    dataset = load_scenario_dataset(scenario)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "scenario.yaml", scenario.to_yaml())
    progress("analysing items", 0, 1)
    profiles = profiles_for(dataset, scenario)
    parts = build_parts(scenario, dataset, profiles)
    titles = [str(t) for t in dataset.items["title"]]
    plans = plan_sessions(scenario, parts, _store(scenario, parts, out, progress))
    tree = RandomTree(scenario.seed)
    decider = scenario_decider(scenario, parts, progress)
    stage = Stage(parts.catalog, parts.memory, decider, titles, tree, _leak_check(scenario, parts, titles),
                  cfg.turns, cfg.k, cfg.rank_k, cfg.protocol)  # fmt: skip
    saved = tree.generator(Stream.TRANSCRIPTS).permutation(len(plans))[: cfg.transcripts]
    sample = {plans[i].session_id for i in saved}
    llm = make_llm_writer(scenario) if cfg.writer == "llm" else None
    reports: dict[str, dict] = {}
    tables: list[pd.DataFrame] = []
    with open(out / "transcripts.jsonl", "w", encoding="utf-8") as log:
        run = _Run(scenario, out, plans, stage, make_check(scenario), llm, sample, log, progress)
        for entry in targets:
            label = f"conversations ({entry.name})" if len(targets) > 1 else "conversations"
            reports[entry.name], table = run.hold(entry, keys[entry.name], label)
            tables.append(table)
    progress("writing outputs", 0, 1)
    turns = pd.concat(tables, ignore_index=True)
    atomic_write(out / "turns.parquet", lambda tmp: turns.to_parquet(tmp, index=False))
    if len(targets) == 1:
        report = next(iter(reports.values()))
    else:
        report = {"compared": list(reports), "table": comparison_rows(reports), "by_crs": reports}
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    summary = {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "kind": "conversation",
        "agents": len({p.agent for p in plans}),
        "items": len(parts.catalog.item_ids),
        "conversation": report,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return RunResult(out, summary)


def _transcript(result: SessionResult, stage: Stage, crs: str) -> dict:
    plan = result.plan
    return {
        "crs": crs,
        "session_id": plan.session_id,
        "agent": plan.agent,
        "style": plan.style,
        "behaviour": plan.behaviour,
        "patience": plan.patience,
        "targets": [
            {"title": stage.titles[g.item], "category": g.category, "reasons": list(g.reasons)} for g in plan.goals
        ],
        "shock_turn": plan.shock_turn or None,
        "avoid": plan.avoid or None,
        "outcome": result.outcome,
        "turns_to_success": result.turns_to_success,
        "target_ranks": result.ranks,
        "conversation": result.transcript,
    }
