"""The reply shapes, the built-in CRS server (limits, bad requests, ``tastesim serve-crs``), sessions and
stress runs against it, and faults counted by the stress runner. (``HttpCRS`` itself, in both modes, is
covered by tests/contracts/test_crs_client_contract.py, whose fault server the stress tests reuse.)

Every server here is a real local process or thread on 127.0.0.1; loads are a few dozen requests.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from contracts.test_crs_client_contract import INJECTION, fault_url, faulty  # noqa: F401 (faulty is a fixture)
from helpers import CLI, free_port, serve_in_thread, started_process
from tastesim.conversation.session import Stage, hold_session
from tastesim.crs.baseline import BaselineCRS
from tastesim.crs.builtin import build_baseline
from tastesim.crs.http import HttpCRS
from tastesim.crs.protocol import CRSError, Mode, read_reply
from tastesim.crs.server import crs_server
from tastesim.rng import RandomTree
from tastesim.runs.converse import _leak_check, make_writer, plan_sessions, run_conversations
from tastesim.scenario import Scenario
from tastesim.world.build import build_parts, profiles_for, scenario_decider


@pytest.mark.parametrize("mode", ["json", "openai"])
@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"items": ["1", 2], "text": "hi", "question": "more?"}, None),
        ({"items": []}, None),
        ({"items": ["1"], "question": ""}, None),
        ({"text": "no items"}, "malformed"),
        ({"items": "1,2"}, "malformed"),
        ({"items": [True]}, "malformed"),
        ({"items": [{"id": 1}]}, "malformed"),
        ({"items": ["1"], "text": 3}, "malformed"),
        (["1", "2"], "malformed"),
    ],
)
def test_reply_contract(body: object, kind: str | None, mode: Mode) -> None:
    raw = json.dumps(body if mode == "json" else {"choices": [{"message": {"content": json.dumps(body)}}]})
    if kind is None:
        reply = read_reply(raw, mode)
        assert reply.items == tuple(str(i) for i in body["items"])  # type: ignore[index]
        assert reply.question == (body.get("question") or None)  # type: ignore[union-attr]
    else:
        with pytest.raises(CRSError) as err:
            read_reply(raw, mode)
        assert err.value.kind == kind


@pytest.mark.parametrize(
    "envelope",
    [
        {"choices": [{"message": {"content": "try Toy Story"}}]},  # content that is not the JSON contract
        {"choices": []},
        {"items": ["1"]},  # the JSON contract where a chat completion belongs
        "{not json",
    ],
)
def test_openai_reply_needs_a_chat_completion_with_json_content(envelope: object) -> None:
    with pytest.raises(CRSError, match="malformed"):
        read_reply(envelope if isinstance(envelope, str) else json.dumps(envelope), "openai")


# -- fixtures: the slice catalog with the hashing embedder ------------------------------------------------
def _scenario(slice_dir: Path, cache: Path, **conversation: object) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "conv",
            "seed": 5,
            "dataset": {"path": str(slice_dir), "name": "ml-100k-slice"},
            "analyser": {"embedder": "hashing"},
            "decision": {"model": "logical", "click_threshold": 0.2},
            "cache_dir": str(cache),
            "conversation": {"sessions": 12, "concurrency": 6, "turns": 3, "timeout_s": 2.0, **conversation},
        }
    )


@pytest.fixture(scope="module")
def world(slice_dir: Path, slice_dataset, tmp_path_factory: pytest.TempPathFactory):
    """Scenario, parts and a running built-in CRS (served from a thread, on a free loopback port)."""
    scenario = _scenario(slice_dir, tmp_path_factory.mktemp("cache"))
    profiles = profiles_for(slice_dataset, scenario)
    parts = build_parts(scenario, slice_dataset, profiles)
    server = crs_server(build_baseline(scenario, parts.catalog.item_ids, profiles))
    with serve_in_thread(server):
        yield scenario, parts, server


def _stage(scenario: Scenario, parts, turns: int = 3) -> Stage:
    titles = [str(t) for t in parts.dataset.items["title"]]
    decider = scenario_decider(scenario, parts)
    return Stage(parts.catalog, parts.memory, decider, titles, RandomTree(scenario.seed),
                 _leak_check(scenario, parts, titles), turns, 10, 50)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "path"), [("json", "/recommend"), ("openai", "/v1/chat/completions")])
def test_target_sessions_with_builtin_crs_over_http_never_name_the_target(world, mode: str, path: str) -> None:
    scenario, parts, server = world
    plans = plan_sessions(scenario, parts)
    writer = make_writer(scenario)
    stage = _stage(scenario, parts)

    async def talk():
        async with HttpCRS(server.url + path, mode=mode, timeout_s=5) as crs:
            return [await hold_session(plan, stage, crs, writer) for plan in plans[:8]], crs.stats

    results, stats = asyncio.run(talk())
    writer.close()
    assert stats.requests == sum(len(r.records) for r in results) and stats.retries == 0
    assert any(rank is not None for r in results for rank in r.ranks)  # the retrieval CRS ranks some targets
    for result in results:
        assert all(rec.error == "" and rec.items == 50 for rec in result.records), result.records
        said = " ".join(turn["user"] for turn in result.transcript).lower()
        for goal in result.plan.goals:  # the agent never names what it is after (the leak check, on real sessions)
            assert stage.titles[goal.item].lower() not in said
            assert not stage.leak.score(said, goal.item).titles
        assert result.residual == 0
        if result.outcome == "success":
            assert result.transcript[-1]["final"] and result.turns_to_success == len(result.records)
            assert result.ranks[-1] is not None and result.ranks[-1] <= 10
        # The CRS never shows an item twice within a conversation (it reads the shown items from the messages).
        assert len(result.shown) == len(set(result.shown))


@pytest.mark.slow
def test_builtin_crs_rejects_bad_requests_and_keeps_serving(world) -> None:
    _, _, server = world
    assert server.address[0] == "127.0.0.1"  # the loopback interface unless told otherwise
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    bad = httpx.post(server.url + "/recommend", content=b"{nope")
    assert bad.status_code == 400 and "invalid JSON body" in bad.json()["error"]
    empty = httpx.post(server.url + "/recommend", json={"messages": []})
    assert empty.status_code == 400 and "messages: the conversation has no user text" in empty.json()["error"]
    wrong = httpx.post(server.url + "/v1/chat/completions", json={"messages": [{"role": "bot", "content": "hi"}]})
    assert wrong.status_code == 400 and "messages.0.role" in wrong.json()["error"]
    huge = {"messages": [{"role": "user", "content": "x" * (1 << 20)}]}  # over the 1 MiB body limit
    assert httpx.post(server.url + "/recommend", json=huge).status_code == 413
    assert httpx.post(server.url + "/elsewhere", json={}).status_code == 404
    ok = httpx.post(server.url + "/recommend", json={"messages": [{"role": "user", "content": "a comedy"}], "k": 3})
    assert ok.status_code == 200 and len(read_reply(ok.content, "json").items) == 3


@pytest.mark.slow
def test_a_saturated_crs_answers_503_and_serves_again() -> None:
    release = threading.Event()

    def slow_embed(texts: list[str]) -> np.ndarray:
        release.wait(timeout=10)  # holds the only worker thread until the test lets go
        return np.ones((len(texts), 2)) / np.sqrt(2)

    crs = BaselineCRS(["a", "b"], np.eye(2), slow_embed)
    server = crs_server(crs, threads=1, waiting=1)
    body = {"messages": [{"role": "user", "content": "anything"}], "k": 1}
    with serve_in_thread(server), httpx.Client(base_url=server.url, timeout=10) as client:

        async def three_at_once() -> list[int]:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                first = asyncio.create_task(http.post("/recommend", json=body))
                second = asyncio.create_task(http.post("/recommend", json=body))
                await asyncio.sleep(0.5)  # both are in: one at work, one queued
                third = await http.post("/recommend", json=body)
                assert third.headers["Retry-After"] == "1"
                release.set()
                return [(await first).status_code, (await second).status_code, third.status_code]

        assert sorted(asyncio.run(three_at_once())) == [200, 200, 503]
        assert client.get("/health").status_code == 200
        assert client.post("/recommend", json=body).status_code == 200


# -- faults counted by the stress runner (the fault server of the client contract) -------------------------
def _stress(tmp_path: Path, slice_dir: Path, url: str, **conversation: object) -> tuple[dict, pd.DataFrame]:
    scenario = _scenario(slice_dir, tmp_path / "cache", crs_url=url, **conversation)
    result = run_conversations(scenario, tmp_path / "out")
    turns = pd.read_parquet(result.folder / "turns.parquet")
    report = json.loads((result.folder / "report.json").read_text())
    assert report == result.summary["conversation"]
    assert report["sessions_finished"] == report["sessions_planned"] == 12  # faults never end the run
    assert len(turns) == report["turns"] and sum(report["errors"].values()) == (turns["error"] != "").sum()
    assert (result.folder / "scenario.yaml").is_file()
    lines = (result.folder / "transcripts.jsonl").read_text().splitlines()
    assert len(lines) == min(12, scenario.conversation.transcripts)
    return report, turns


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "kind"),
    [("flaky", "http_5xx"), ("timeout", "timeout"), ("malformed", "malformed"), ("refused", "refused")],
)
def test_faults_are_counted_and_the_report_is_complete(
    tmp_path: Path,
    slice_dir: Path,
    faulty: str,  # noqa: F811 (the fixture imported above)
    fault: str,
    kind: str,
) -> None:
    report, turns = _stress(tmp_path, slice_dir, fault_url(faulty, fault), timeout_s=0.3, retries=1)
    errors = report["errors"]
    assert errors[kind] > 0 and sum(errors.values()) == errors[kind]
    if kind == "http_5xx":  # one request in five fails; the others are served and decided on
        assert 0.1 <= report["error_rate"] <= 0.3
        assert report["requests_ok"] > 0 and report["latency_ms"]["p99"] is not None
    else:  # every request fails: sessions end as failed, no latency of a served request exists
        assert report["error_rate"] == 1.0 and report["failed_sessions_rate"] == 1.0
        assert report["latency_ms"]["p50"] is None and report["latency_all_requests_ms"]["p50"] is not None
    if kind == "timeout":
        assert (turns["latency_s"] < 1.4).all()  # the client gave up at its timeout, not the server's delay


@pytest.mark.slow
def test_a_prompt_injection_in_crs_replies_stays_data(
    tmp_path: Path,
    slice_dir: Path,
    faulty: str,  # noqa: F811 (the fixture imported above)
) -> None:
    """A CRS whose replies order the simulated user around: its text is recorded as the CRS's, and no user
    message ever carries it (users write from their memories and the shown items' reasons, never from it)."""
    report, _ = _stress(tmp_path, slice_dir, fault_url(faulty, "inject"), transcripts=12)
    assert report["error_rate"] == 0.0
    transcripts = [json.loads(line) for line in (tmp_path / "out" / "transcripts.jsonl").read_text().splitlines()]
    turns = [turn for t in transcripts for turn in t["conversation"]]
    assert any(turn["crs"]["text"] == INJECTION for turn in turns)  # it arrived, and is kept as the CRS's text
    assert not any("PWNED" in turn["user"] for turn in turns)


@pytest.mark.slow
def test_stress_against_builtin_crs_writes_the_report(tmp_path: Path, slice_dir: Path) -> None:
    behaviours = {"cooperative": 0.4, "changes_mind": 0.2, "contradictory": 0.2, "negative_only": 0.2}
    scenario = _scenario(slice_dir, tmp_path / "cache", sessions=40, concurrency=20, transcripts=5,
                         behaviours=behaviours)  # fmt: skip
    result = run_conversations(scenario, tmp_path / "out")
    report = result.summary["conversation"]
    assert report["errors"] == dict.fromkeys(report["errors"], 0)
    assert report["sessions_finished"] == 40 and report["protocol"] == "target"
    assert set(report["by_style"]) == {"terse", "natural", "vague", "noisy", "paraphrase"}
    assert set(report["by_behaviour"]) == {"cooperative", "changes_mind", "contradictory", "negative_only"}
    assert all(len(curve) == 3 for curve in report["recall"].values())
    assert report["recall"]["@1"][-1] <= report["recall"]["@10"][-1] <= report["recall"]["@50"][-1]
    # The easy-mode figure, next to the real one: a user likes something shown far more often than its target.
    assert report["liked_anything_rate"] > report["success_rate"]
    assert report["leak"]["residual_rate"] == 0.0
    writer = report["writer"]  # the template writer writes every text itself, and never falls back
    assert writer["texts_written"] == writer["texts_requested"] > 0 and writer["fallbacks"] == 0
    assert writer["grounded_rate"] == 1.0 and writer["junk_rate"] == 0.0
    transcripts = [json.loads(line) for line in (result.folder / "transcripts.jsonl").read_text().splitlines()]
    assert len(transcripts) == 5 and all(t["conversation"][0]["user"] for t in transcripts)
    resolved = yaml.safe_load((result.folder / "scenario.yaml").read_text())
    assert resolved["conversation"]["sessions"] == 40


@pytest.mark.slow
def test_serve_crs_command_serves_on_loopback(tmp_path: Path, slice_dir: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        yaml.safe_dump(
            {
                "dataset": {"path": str(slice_dir), "name": "ml-100k-slice"},
                "analyser": {"embedder": "hashing"},
                "cache_dir": str(tmp_path / "cache"),
            }
        )
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "crs.log"
    with started_process([*CLI, "serve-crs", str(scenario), "--port", str(port)], url + "/health", log=log):
        assert httpx.get(url + "/health").json()["items"] > 0
        body = {"session_id": "x", "turn": 1, "k": 3, "messages": [{"role": "user", "content": "a funny comedy"}]}
        assert len(read_reply(httpx.post(url + "/recommend", json=body).content, "json").items) == 3
        busy = subprocess.run(
            [*CLI, "serve-crs", str(scenario), "--port", str(port)], check=False, capture_output=True, text=True
        )
    assert f"retrieval CRS on {url}/recommend" in log.read_text()  # bound to the loopback default
    assert busy.returncode == 2 and "cannot listen on 127.0.0.1" in busy.stderr and "Traceback" not in busy.stderr
    missing = [*CLI, "serve-crs", str(tmp_path / "missing.yaml")]
    bad = subprocess.run(missing, check=False, capture_output=True, text=True)
    assert bad.returncode == 2 and "not found" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_recall_through_the_chroma_store_matches_working_memory(
    world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tastesim.conversation.recall import fill_store, recall_from_store, strongest_likes
    from tastesim.memory.store import open_store
    from tastesim.memory.writer import RecordFactory

    _, parts, _ = world
    tables, bank, memory = parts.catalog.tables, parts.catalog.bank, parts.memory
    store = open_store(tmp_path / "memory", "recall-test")
    factory = RecordFactory(
        bank.texts, bank.vectors, parts.catalog.item_ids, [tables.categories[c] for c in tables.primary]
    )
    agents = np.array([0, 3, 3, 7])
    monkeypatch.setattr("tastesim.conversation.recall._BATCH", 7)  # several Chroma batches
    written = fill_store(store, memory, agents, factory)
    assert written == store.count() == int((memory.reason[[0, 3, 7]] >= 0).sum())
    for agent in (0, 3, 7):
        from_store = recall_from_store(store, agent, "no such category", k=3)
        slots = strongest_likes(memory, agent, mask=0, k=3)
        strength_of = {bank.texts[r]: s for r, s in zip(memory.reason[agent], memory.strength[agent], strict=True)}
        assert sorted(strength_of[t] for t in from_store) == sorted(memory.strength[agent, slots].tolist())
        drama = recall_from_store(store, agent, "Drama", k=16)
        categories = {r.text: r.category for r in store.get(agent_id=agent, polarity="like")}
        flags = [categories[t] == "Drama" for t in drama]
        assert flags == sorted(flags, reverse=True)  # in-category memories come first
    assert recall_from_store(store, 999, "Drama", k=3) == []
