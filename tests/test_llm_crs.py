"""The LLM CRS through real OpenAI-compatible endpoints: ``tastesim serve-crs --llm`` (the embedded model names
movies from a few-shot prompt, mapped to catalog items by the server) and ``tastesim llm serve`` as a chat
endpoint behind an API key (free text, mapped by the client in ``chat`` mode); and a side-by-side run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pandas as pd
import pytest

from helpers import CLI, free_port, started_process
from tastesim.crs.http import HttpCRS
from tastesim.crs.names import TitleIndex
from tastesim.crs.protocol import CRSRequest, Message
from tastesim.data import load_dataset

ASKS = ("a funny animated movie for kids", "big action and science fiction in space", "a tense thriller")


@pytest.fixture(scope="module")
def catalog() -> TitleIndex:
    items = load_dataset("ml-100k").items
    return TitleIndex(list(items["item"]), [str(t) for t in items["title"]])


def _ask(url: str, mode: str, text: str, **client: object):
    async def one():
        async with HttpCRS(url, mode=mode, timeout_s=300, **client) as crs:
            reply = await crs.respond(CRSRequest("s1", 1, (Message("user", text),), 10))
            return reply, crs.stats

    return asyncio.run(one())


@pytest.mark.slow
def test_the_llm_crs_answers_through_the_openai_path_with_its_names_mapped(tmp_path: Path, catalog: TitleIndex) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with started_process([*CLI, "serve-crs", "--llm", "--port", str(port)], url + "/health", log=tmp_path / "crs.log",
                         timeout_s=300):  # fmt: skip
        mapped = []
        for text in ASKS:
            reply, _ = _ask(url + "/v1/chat/completions", "openai", text)
            assert set(reply.items) <= set(catalog.item_ids) and len(reply.items) <= 10
            assert reply.items == catalog.items(reply.text)[0][:10]  # the items are the names the model wrote
            mapped += reply.items
        assert mapped, "the model named no catalog item for any request"
        refused = httpx.post(url + "/recommend", json={"messages": [{"role": "user", "content": " "}]}, timeout=60)
        assert refused.status_code == 400
    assert "llm CRS on" in (tmp_path / "crs.log").read_text()


@pytest.mark.slow
def test_llm_serve_is_an_openai_chat_endpoint_behind_an_api_key(tmp_path: Path, catalog: TitleIndex) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"TASTESIM_TEST_KEY": "k-123"}
    args = [*CLI, "llm", "serve", "--port", str(port), "--model", "shipped", "--api-key-env", "TASTESIM_TEST_KEY"]
    with started_process(args, url + "/", log=tmp_path / "llm.log", env=env, timeout_s=300):
        assert httpx.get(url + "/v1/models").status_code == 401
        models = httpx.get(url + "/v1/models", headers={"Authorization": "Bearer k-123"}).json()
        assert models["data"][0]["object"] == "model"
        body = {"model": "x", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        streamed = httpx.post(url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer k-123"})
        assert streamed.status_code == 400 and "stream" in streamed.json()["error"]
        wrong = _ask_status(url + "/v1/chat/completions", catalog, "wrong")
        assert wrong == "http_4xx"
        reply, stats = _ask(url + "/v1/chat/completions", "chat", ASKS[0], api_key="k-123", titles=catalog)
        assert reply.text.strip()  # the model's own words
        assert reply.items == catalog.items(reply.text)[0][:10] and stats.requests == 1


def _ask_status(url: str, catalog: TitleIndex, key: str) -> str:
    from tastesim.crs.protocol import CRSError

    try:
        _ask(url, "chat", "anything", api_key=key, titles=catalog)
    except CRSError as err:
        return err.kind
    return "ok"


@pytest.mark.slow
def test_a_side_by_side_run_reports_each_crs(tmp_path: Path, slice_dir: Path) -> None:
    from tastesim.runs.converse import run_conversations
    from tastesim.scenario import Scenario

    scenario = Scenario.model_validate(
        {
            "name": "side-by-side",
            "seed": 3,
            "dataset": {"path": str(slice_dir), "name": "ml-100k-slice"},
            "analyser": {"embedder": "hashing"},
            "cache_dir": str(tmp_path / "cache"),
            "conversation": {
                "compare": [{"name": "retrieval", "builtin": "retrieval"}, {"name": "floor", "builtin": "popularity"}],
                "sessions": 10, "concurrency": 5, "turns": 3, "transcripts": 4, "recall": "working",
            },
        }
    )  # fmt: skip
    result = run_conversations(scenario, tmp_path / "out")
    report = json.loads((result.folder / "report.json").read_text())
    assert report["compared"] == ["retrieval", "floor"] and set(report["by_crs"]) == {"retrieval", "floor"}
    assert [row[0] for row in report["table"][1:]] == ["retrieval", "floor"]
    for name, one in report["by_crs"].items():
        assert one["sessions_finished"] == 10 and one["crs"]["name"] == name and one["errors"]["refused"] == 0
    turns = pd.read_parquet(result.folder / "turns.parquet")
    assert set(turns["crs"]) == {"retrieval", "floor"}
    sessions = [json.loads(line) for line in (result.folder / "transcripts.jsonl").read_text().splitlines()]
    assert {s["crs"] for s in sessions} == {"retrieval", "floor"} and len(sessions) == 8
    # The same sessions for both: the same targets, in the same styles.
    by = {
        c: {(s["session_id"], s["targets"][0]["title"]) for s in sessions if s["crs"] == c}
        for c in ("retrieval", "floor")
    }
    assert by["retrieval"] == by["floor"]
    from tastesim.runs.outcome import RunError
    from tastesim.scenario import CRSEntry

    entry = CRSEntry(name="x", url="http://127.0.0.1:9/v1/chat/completions", mode="chat",
                     api_key_env="TASTESIM_NO_SUCH_KEY")  # fmt: skip
    missing = scenario.model_copy(
        update={"conversation": scenario.conversation.model_copy(update={"compare": [entry]})}
    )
    with pytest.raises(RunError, match="set the environment variable TASTESIM_NO_SUCH_KEY"):
        run_conversations(missing, tmp_path / "out2")
