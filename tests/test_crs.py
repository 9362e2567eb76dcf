"""The CRS contract, the HTTP adapter, the built-in baseline over loopback HTTP, and faults that are counted.

Every server here is a real local process or thread on 127.0.0.1; loads are a few dozen requests.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from tastesim.conversation.session import Stage, hold_session
from tastesim.crs.baseline import serve_baseline
from tastesim.crs.builtin import build_baseline
from tastesim.crs.http import HttpCRS
from tastesim.crs.protocol import CRSError, CRSRequest, Message, parse_openai_reply, parse_reply
from tastesim.rng import RandomTree
from tastesim.runs.converse import make_writer, plan_sessions, run_conversations
from tastesim.scenario import Scenario
from tastesim.world.build import build_parts, profiles_for, scenario_decider


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"items": ["1", 2], "text": "hi", "question": "more?"}, None),
        ({"items": []}, None),
        ({"text": "no items"}, "malformed"),
        ({"items": "1,2"}, "malformed"),
        ({"items": [True]}, "malformed"),
        ({"items": [{"id": 1}]}, "malformed"),
        ({"items": ["1"], "text": 3}, "malformed"),
        (["1", "2"], "malformed"),
    ],
)
def test_reply_contract(body: object, kind: str | None) -> None:
    if kind is None:
        reply = parse_reply(body)
        assert all(isinstance(i, str) for i in reply.items)
        assert parse_openai_reply({"choices": [{"message": {"content": json.dumps(body)}}]}) == reply
    else:
        with pytest.raises(CRSError) as err:
            parse_reply(body)
        assert err.value.kind == kind


def test_openai_reply_needs_json_content() -> None:
    with pytest.raises(CRSError, match="malformed"):
        parse_openai_reply({"choices": [{"message": {"content": "try Toy Story"}}]})


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
    """Scenario, parts and a running built-in CRS (background thread on a free loopback port)."""
    scenario = _scenario(slice_dir, tmp_path_factory.mktemp("cache"))
    profiles = profiles_for(slice_dataset, scenario)
    parts = build_parts(scenario, slice_dataset, profiles)
    server = serve_baseline(build_baseline(scenario, parts.catalog.item_ids, profiles))
    yield scenario, parts, server
    server.shutdown()
    server.server_close()


def _stage(scenario: Scenario, parts, turns: int = 3) -> Stage:
    titles = [str(t) for t in parts.dataset.items["title"]]
    decider = scenario_decider(scenario, parts)
    return Stage(parts.catalog, parts.memory, decider, titles, RandomTree(scenario.seed), turns, 10)


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "path"), [("json", "/recommend"), ("openai", "/v1/chat/completions")])
def test_session_with_builtin_crs_over_http_reaches_success(world, mode: str, path: str) -> None:
    scenario, parts, server = world
    titles = [str(t) for t in parts.dataset.items["title"]]
    plans = plan_sessions(scenario, parts, titles)
    writer = make_writer(scenario)

    async def talk():
        async with HttpCRS(server.base_url + path, mode=mode, timeout_s=5) as crs:
            return [await hold_session(plan, _stage(scenario, parts), crs, writer) for plan in plans[:4]], crs.stats

    results, stats = asyncio.run(talk())
    assert stats.requests == sum(len(r.records) for r in results) and stats.retries == 0
    assert any(r.outcome == "success" for r in results)
    for result in results:
        assert all(rec.error == "" and rec.items == 10 for rec in result.records)
        said = " ".join(turn["user"] for turn in result.transcript).lower()
        for title in result.plan.secret_titles:  # the agent never names what it is after
            assert title.lower() not in said
        if result.outcome == "success":
            assert result.transcript[-1]["final"] and result.turns_to_success == len(result.records)
        # The CRS never repeats an item within a conversation (it reads the shown items from the messages).
        assert len(result.shown) == len(set(result.shown))


@pytest.mark.slow
def test_builtin_crs_rejects_bad_requests(world) -> None:
    _, _, server = world
    assert httpx.get(server.base_url + "/health").json()["status"] == "ok"
    assert httpx.post(server.base_url + "/recommend", content=b"{nope").status_code == 400
    assert httpx.post(server.base_url + "/recommend", json={"messages": []}).status_code == 400
    assert httpx.post(server.base_url + "/elsewhere", json={}).status_code == 404


# -- a CRS that misbehaves on purpose ----------------------------------------------------------------------
class _FaultyHandler(BaseHTTPRequestHandler):
    """``/flaky``: every 5th request is a 500; ``/hang``: answers after 1.5 s; ``/malformed``: bad bodies;
    ``/busy``: 503 on every other request (safe to retry)."""

    protocol_version = "HTTP/1.1"
    counts: ClassVar[dict[str, int]] = {}
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:
        return None

    def _write(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            n = self.counts[self.path] = self.counts.get(self.path, 0) + 1
        good = json.dumps({"items": self.server.items[: body.get("k", 10)], "text": "ok"}).encode()
        if self.path == "/flaky" and n % 5 == 0:
            self._write(500, b'{"error": "boom"}')
        elif self.path == "/busy" and n % 2 == 1:
            self._write(503, b'{"error": "busy"}')
        elif self.path == "/hang":
            time.sleep(1.5)
            self._write(200, good)
        elif self.path == "/malformed":
            self._write(200, b"{not json" if n % 2 else b'{"items": "all of them"}')
        else:
            self._write(200, good)


@pytest.fixture(scope="module")
def faulty(world):
    _, parts, _ = world
    _FaultyHandler.counts = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FaultyHandler)
    server.daemon_threads = True
    server.items = list(reversed(parts.catalog.item_ids))  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/recommend"  # nothing listens there any more


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
    ("path", "kind"), [("/flaky", "http_5xx"), ("/hang", "timeout"), ("/malformed", "malformed"), (None, "refused")]
)
def test_faults_are_counted_and_the_report_is_complete(
    tmp_path: Path, slice_dir: Path, faulty: str, path: str | None, kind: str
) -> None:
    url = faulty + path if path else _refused_url()
    report, turns = _stress(tmp_path, slice_dir, url, timeout_s=0.3, retries=1)
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
def test_503_is_retried_with_backoff(world, faulty: str) -> None:
    scenario, parts, _ = world
    plans = plan_sessions(scenario, parts, [str(t) for t in parts.dataset.items["title"]])

    async def talk():
        async with HttpCRS(faulty + "/busy", retries=2, backoff_s=0.01) as crs:
            request = CRSRequest(plans[0].session_id, 1, (Message("user", "a thriller"),), 5)
            replies = [await crs.respond(request) for _ in range(3)]
            return replies, crs.stats

    replies, stats = asyncio.run(talk())
    assert all(len(r.items) == 5 for r in replies)
    assert stats.retries == 3 and stats.requests == 6


@pytest.mark.slow
def test_stress_against_builtin_crs_writes_the_report(tmp_path: Path, slice_dir: Path) -> None:
    scenario = _scenario(slice_dir, tmp_path / "cache", sessions=40, concurrency=20, transcripts=5)
    result = run_conversations(scenario, tmp_path / "out")
    report = result.summary["conversation"]
    assert report["errors"] == dict.fromkeys(report["errors"], 0)
    assert report["sessions_finished"] == 40 and report["success_rate"] > 0
    assert set(report["by_style"]) == {"terse", "natural", "vague", "noisy", "paraphrase"}
    writer = report["writer"]  # the template writer writes every text itself, and never falls back
    assert writer["texts_written"] == writer["texts_requested"] > 0 and writer["fallbacks"] == 0
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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-c", "from tastesim.cli import main; main()", "serve-crs"]
    proc = subprocess.Popen(
        [*cmd, str(scenario), "--port", str(port)], env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(url + "/health", timeout=1).json()
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail(f"serve-crs did not start: {proc.stderr.read().decode()[-400:] if proc.stderr else ''}")
        assert health["items"] > 0
        body = {"session_id": "x", "turn": 1, "k": 3, "messages": [{"role": "user", "content": "a funny comedy"}]}
        reply = parse_reply(httpx.post(url + "/recommend", json=body).json())
        assert len(reply.items) == 3
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    bad = subprocess.run([*cmd, str(tmp_path / "missing.yaml")], check=False, capture_output=True, text=True)
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
