"""The ``ollama`` backend through ChatOllama against misbehaving loopback servers: down, slow, HTTP 500, junk."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers import refused_url, serve_in_thread
from tastesim.analysis.llm_analyser import LLMAnalyser, LLMAnalyserSettings
from tastesim.llm.backend import LLMBackend, LLMError, make_backend
from tastesim.llm.cache import ReplyCache
from tastesim.scenario import OllamaSettings

pytestmark = pytest.mark.slow  # real servers and processes, or tens of seconds of model conversion


class _Stub(BaseHTTPRequestHandler):
    """Answers /api/chat according to the server's ``mode``; counts requests."""

    server: _StubServer

    def log_message(self, *args: object) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests += 1
        mode = self.server.mode
        if mode == "slow":
            time.sleep(1.5)
        if mode == "500":
            self._reply(500, {"error": "model runner crashed"})
            return
        content = self.server.content
        self._reply(
            200,
            {
                "model": "m",
                "created_at": "2026-01-01T00:00:00Z",
                "done": True,
                "done_reason": "stop",
                "message": {"role": "assistant", "content": content},
            },
        )

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode: str, content: str = "") -> None:
        super().__init__(("127.0.0.1", 0), _Stub)
        self.mode, self.content, self.requests = mode, content, 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def stub(request: pytest.FixtureRequest) -> Iterator[_StubServer]:
    server = _StubServer(*request.param)
    with serve_in_thread(server):
        yield server


def _ollama(url: str, **settings: float) -> LLMBackend:
    return make_backend(OllamaSettings(model="m", base_url=url, **settings))


def test_server_down_says_what_to_do() -> None:
    backend = _ollama(refused_url().rstrip("/"), retries=1, backoff=0.01)
    with pytest.raises(LLMError, match=r"cannot reach Ollama .* check that Ollama is running"):
        backend.complete("hello")


@pytest.mark.parametrize("stub", [("slow",)], indirect=True)
def test_timeout_is_retried_then_reported(stub: _StubServer) -> None:
    backend = _ollama(stub.url, timeout=0.3, retries=1, backoff=0.01)
    with pytest.raises(LLMError, match=r"did not answer within 0.3 s"):
        backend.complete("hello")
    assert stub.requests == 2


@pytest.mark.parametrize("stub", [("500",)], indirect=True)
def test_http_500_is_retried_with_backoff_then_reported(stub: _StubServer) -> None:
    backend = _ollama(stub.url, retries=2, backoff=0.05)
    start = time.perf_counter()
    with pytest.raises(LLMError, match=r"HTTP 500: model runner crashed"):
        backend.complete("hello")
    assert stub.requests == 3
    assert time.perf_counter() - start >= 0.05 + 0.1  # two waits, the second doubled


@pytest.mark.parametrize("stub", [("ok", "Sure! Here is the analysis: {like: [oops")], indirect=True)
def test_malformed_json_retries_once_then_falls_back(stub: _StubServer, slice_dataset, tmp_path: Path) -> None:
    dataset = slice_dataset
    backend = _ollama(stub.url, retries=0)
    offline_calls = []

    def offline(catalog):
        offline_calls.append(catalog.n_items)
        from tastesim.analysis.keyphrase import KeyphraseAnalyser
        from tastesim.embedding import make_embedder

        return KeyphraseAnalyser(make_embedder("hashing")).analyse(catalog)

    analyser = LLMAnalyser(backend, ReplyCache(tmp_path / "c.sqlite"), offline, LLMAnalyserSettings())
    head = _head(dataset, 2)
    profiles = analyser.analyse(head)
    assert [p.item for p in profiles] == list(head.items["item"])
    assert all(p.source == "fallback" and p.like for p in profiles)
    assert analyser.stats.fell_back == 2 and analyser.stats.valid == 0
    assert stub.requests == 4  # one call and one retry (next seed) per item
    assert offline_calls == [2]


@pytest.mark.parametrize("stub", [("500",)], indirect=True)
def test_a_dead_service_stops_the_analysis(stub: _StubServer, slice_dataset, tmp_path: Path) -> None:
    backend = _ollama(stub.url, retries=0)
    settings = LLMAnalyserSettings(max_failures=2)
    analyser = LLMAnalyser(backend, ReplyCache(tmp_path / "c.sqlite"), lambda c: [], settings)
    with pytest.raises(LLMError, match="HTTP 500"):
        analyser.analyse(_head(slice_dataset, 4))
    assert stub.requests < 4  # the queue is cancelled: the last item is never asked (one may be in flight)


def _head(dataset, n: int):
    from tastesim.data.dataset import Dataset

    items = dataset.items.head(n)
    return Dataset(dataset.name, dataset.interactions[dataset.interactions["item"].isin(set(items["item"]))], items)


GOOD = (
    '{"category": "Drama", "like": [{"reason": "Moving story of loss", "keywords": ["loss", "grief"]}], "dislike": []}'
)


@pytest.mark.parametrize("stub", [("ok", GOOD)], indirect=True)
def test_a_scenario_with_the_ollama_analyser_gets_llm_profiles_in_item_order(
    stub: _StubServer, slice_dir: Path, tmp_path: Path
) -> None:
    from tastesim.data import load_dataset
    from tastesim.scenario import Scenario
    from tastesim.world.build import profiles_for

    scenario = Scenario.model_validate(
        {
            "dataset": {"path": slice_dir},
            "analyser": {"kind": "ollama", "base_url": stub.url, "model": "m", "keyword_max_share": 1.0},
            "cache_dir": tmp_path,
        }
    )
    dataset = load_dataset(path=slice_dir)
    profiles = profiles_for(dataset, scenario)
    assert [p.item for p in profiles] == list(dataset.items["item"])
    assert {p.source for p in profiles} == {"llm:ollama:m"}
    assert profiles[0].like[0].keywords == ("loss", "grief")
    requests = stub.requests
    assert profiles_for(dataset, scenario) == profiles and stub.requests == requests  # cached
