"""Run a conversation scenario: many concurrent sessions against an HTTP CRS, into an output folder.

Outputs: ``scenario.yaml`` (resolved), ``transcripts.jsonl`` (a sample of whole conversations, appended as
sessions end), ``turns.parquet`` (one row per turn: latency, client overhead, error kind, items, clicks),
``report.json`` (latency p50/p95/p99, throughput, errors by kind, success by style, recall, abandonment,
writer calls per interaction), ``summary.json`` (headline figures plus the report), ``memory/`` (the Chroma
store recalled through) and ``crs.log`` (the built-in CRS's output, when it is used). Faults of the CRS
are counted, never fatal; the whole run is bounded by ``conversation.max_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from tastesim.conversation.metrics import stress_report, turn_table
from tastesim.conversation.recall import choose_interest, fill_store, recall_from_store, strongest_likes
from tastesim.conversation.session import Plan, SessionResult, Stage, hold_session
from tastesim.conversation.writers import STYLES, LLMWriter, QueryWriter, TemplateWriter
from tastesim.crs.http import HttpCRS
from tastesim.memory.store import MemoryStore
from tastesim.memory.writer import RecordFactory
from tastesim.paths import default_cache_dir
from tastesim.rng import RandomTree, Stream
from tastesim.runs.outcome import Progress, RunError, RunResult, quiet
from tastesim.scenario import ConversationConfig, LlamaCppSettings, Scenario
from tastesim.world.build import Parts, build_parts, load_scenario_dataset, profiles_for, scenario_decider, store_spec

__all__ = ["make_writer", "plan_sessions", "run_conversations"]

_CRS_START_S = 600  # the built-in CRS may embed the whole catalog on its first start


def make_writer(scenario: Scenario) -> QueryWriter:
    """The scenario's writer: the template writer, or the LLM writer through the run's reply cache.

    The cache is ``llm-replies.sqlite`` in the scenario's cache folder (where the embedded model's copy
    is kept too, unless ``llm_options`` names another).
    """
    cfg = scenario.conversation
    assert cfg is not None
    if cfg.writer == "template":
        return TemplateWriter(scenario.seed)
    from tastesim.llm.backend import make_backend
    from tastesim.llm.cache import ReplyCache

    cache_dir = scenario.cache_dir or default_cache_dir()
    settings = cfg.llm_settings
    if isinstance(settings, LlamaCppSettings) and settings.cache_dir is None:
        settings = settings.model_copy(update={"cache_dir": cache_dir})
    return LLMWriter(make_backend(settings), ReplyCache(cache_dir / "llm-replies.sqlite"), seed=scenario.seed)


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


def _draw(scenario: Scenario, n_agents: int) -> tuple[np.ndarray, list[str]]:
    """Each session's agent and style (by population share), from the scenario's random tree."""
    cfg = scenario.conversation
    assert cfg is not None
    rng = RandomTree(scenario.seed).generator(Stream.CONVERSATION_PLAN)
    agents = rng.choice(n_agents, size=cfg.sessions, replace=cfg.sessions > n_agents)
    names = [s for s in STYLES if cfg.styles.get(s, 0) > 0]
    shares = np.array([cfg.styles[s] for s in names], dtype=np.float64)
    return agents, [names[i] for i in rng.choice(len(names), size=cfg.sessions, p=shares / shares.sum())]


def plan_sessions(scenario: Scenario, parts: Parts, titles: list[str], store: MemoryStore | None = None) -> list[Plan]:
    """Draw each session's agent, style (by population share) and interest, and recall its reasons.

    Reasons are read through ``store`` when given (it must hold the agents' memories, see
    :func:`~tastesim.conversation.recall.fill_store`), else from working memory.
    """
    cfg = scenario.conversation
    assert cfg is not None
    tree = RandomTree(scenario.seed)
    agents, styles = _draw(scenario, len(parts.population.users))
    liked = _liked_holdout(parts, scenario.population.like_threshold)
    texts = parts.catalog.bank.texts
    plans = []
    for i, (agent, style) in enumerate(zip(agents.tolist(), styles, strict=True)):
        interest = choose_interest(
            parts.memory, parts.catalog.tables, agent, liked[agent], tree.generator(Stream.INTEREST, i)
        )
        if store is not None:
            reasons = tuple(recall_from_store(store, agent, interest.category, cfg.reasons))
        else:
            slots = strongest_likes(parts.memory, agent, interest.mask, cfg.reasons)
            reasons = tuple(texts[int(r)] for r in parts.memory.reason[agent, slots])
        secret = tuple(titles[t] for t in interest.targets)
        plans.append(Plan(f"s{i:06d}", agent, style, interest, reasons, secret))  # type: ignore[arg-type]
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
    agents, _ = _draw(scenario, len(parts.population.users))
    factory = RecordFactory(
        parts.catalog.bank.texts, parts.catalog.bank.vectors, parts.catalog.item_ids,
        [tables.categories[c] for c in tables.primary],
    )  # fmt: skip
    fill_store(store, parts.memory, agents, factory)
    return store


@contextlib.contextmanager
def _crs_url(scenario: Scenario, out: Path) -> Iterator[str]:
    """The CRS endpoint: the scenario's, or the built-in baseline served by ``tastesim serve-crs``.

    The built-in CRS runs as its own process on a free loopback port, so the server does not share a GIL
    with the sessions it is measured by; it reads the resolved ``scenario.yaml`` of the run folder.
    """
    cfg = scenario.conversation
    assert cfg is not None
    if cfg.crs_url:
        yield cfg.crs_url
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = "from tastesim.cli import main; main()"
    with open(out / "crs.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", command, "serve-crs", str(out / "scenario.yaml"), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _CRS_START_S
        while not _up(base):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RunError(f"the built-in CRS did not start; see {out / 'crs.log'}")
            time.sleep(0.3)
        yield base + ("/recommend" if cfg.crs_mode == "json" else "/v1/chat/completions")
    finally:
        server.terminate()
        server.wait(timeout=30)


def _up(base: str) -> bool:
    """Whether the server at ``base`` answers its health check."""
    try:
        return httpx.get(base + "/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


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


def run_conversations(scenario: Scenario, out: Path, progress: Progress = quiet) -> RunResult:
    """Run the scenario's conversations into ``out`` (a new folder) and return the headline figures."""
    cfg = scenario.conversation
    if cfg is None:
        raise RunError("the scenario has no conversation section")
    out = Path(out)
    if (out / "scenario.yaml").exists():
        raise RunError(f"{out} already holds a run: choose another --out")
    progress("loading data", 0, 1)
    dataset = load_scenario_dataset(scenario)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scenario.yaml").write_text(scenario.to_yaml(), encoding="utf-8")
    progress("analysing items", 0, 1)
    profiles = profiles_for(dataset, scenario)
    parts = build_parts(scenario, dataset, profiles)
    titles = [str(t) for t in dataset.items["title"]]
    plans = plan_sessions(scenario, parts, titles, _store(scenario, parts, out, progress))
    writer = make_writer(scenario)
    tree = RandomTree(scenario.seed)
    decider = scenario_decider(scenario, parts, progress)
    stage = Stage(parts.catalog, parts.memory, decider, titles, tree, cfg.turns, cfg.k)
    saved = tree.generator(Stream.TRANSCRIPTS).permutation(len(plans))[: cfg.transcripts]
    sample = {plans[i].session_id for i in saved}
    results: list[SessionResult] = []
    with _crs_url(scenario, out) as url, open(out / "transcripts.jsonl", "w", encoding="utf-8") as log:

        def finished(result: SessionResult) -> None:
            results.append(result)
            if result.plan.session_id in sample:
                log.write(json.dumps(_transcript(result), ensure_ascii=False) + "\n")
                log.flush()
            progress("conversations", len(results), len(plans))

        async def main() -> float:
            async with HttpCRS(url, mode=cfg.crs_mode, model=cfg.crs_model, timeout_s=cfg.timeout_s,
                               retries=cfg.retries, concurrency=cfg.concurrency) as crs:  # fmt: skip
                started = time.perf_counter()
                await _hold_all(plans, stage, crs, writer, finished=finished, cfg=cfg)
                return time.perf_counter() - started

        progress("conversations", 0, len(plans))
        try:
            wall = asyncio.run(main())
        finally:
            writer.close()
    progress("writing outputs", 0, 1)
    turn_table(results).to_parquet(out / "turns.parquet", index=False)
    report = stress_report(
        results,
        planned=len(plans),
        wall_s=wall,
        writer_requests=writer.requests,
        writer_calls=writer.calls,
        writer_fallbacks=writer.fallbacks,
    )
    report["crs"] = {"url": cfg.crs_url or "built-in baseline", "mode": cfg.crs_mode}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    summary = {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "kind": "conversation",
        "agents": len({r.plan.agent for r in results}),
        "items": len(parts.catalog.item_ids),
        "conversation": report,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return RunResult(out, summary)


def _transcript(result: SessionResult) -> dict:
    plan = result.plan
    return {
        "session_id": plan.session_id,
        "agent": plan.agent,
        "style": plan.style,
        "interest": plan.interest.category,
        "recalled_reasons": list(plan.reasons),
        "outcome": result.outcome,
        "turns_to_success": result.turns_to_success,
        "recall": result.recall,
        "conversation": result.transcript,
    }
