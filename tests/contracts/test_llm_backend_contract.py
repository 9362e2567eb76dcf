"""The LLM backend contract, run over every backend: ``llamacpp`` (the embedded SmolLM2, in-process) and
``ollama`` (``OllamaBackend`` through LangChain's ``ChatOllama`` against ``tastesim llm serve``).

Every case is a chat turn (a system message and a prompt), which both backends send through the model's
chat template; replies are a few tokens, so the whole suite takes seconds once the model is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import CLI, free_port, started_process
from tastesim.llm.backend import LLMBackend, LLMReply, make_backend
from tastesim.llm.cache import ReplyCache, cached_complete
from tastesim.scenario import LlamaCppSettings, OllamaSettings

pytestmark = pytest.mark.slow  # a real model, and a real server process

SYSTEM = "You reply with one short JSON object."
PROMPT = "What is 2+2?"
SERVED = "smollm2:135m"


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``tastesim llm serve`` (the shipped SmolLM2 behind the Ollama API) on a free loopback port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("llm-serve") / "serve.log"
    args = [*CLI, "llm", "serve", "--port", str(port), "--model", "shipped"]
    with started_process(args, f"{url}/api/tags", log=log, timeout_s=120):
        yield url


@pytest.fixture(scope="module", params=["llamacpp", "ollama"])
def backend(request: pytest.FixtureRequest) -> LLMBackend:
    if request.param == "llamacpp":
        return make_backend(LlamaCppSettings(model="shipped"))
    url = request.getfixturevalue("llm_server")
    return make_backend(OllamaSettings(model=SERVED, base_url=url, retries=0))


def test_a_completion_is_an_llm_reply_with_token_counts(backend: LLMBackend) -> None:
    assert isinstance(backend, LLMBackend)
    reply = backend.complete(PROMPT, system=SYSTEM, max_tokens=8)
    assert isinstance(reply, LLMReply) and reply.text.strip()
    assert reply.prompt_tokens > 0 and 0 < reply.completion_tokens <= 8 and reply.seconds > 0


def test_max_tokens_bounds_the_reply(backend: LLMBackend) -> None:
    short = backend.complete(PROMPT, system=SYSTEM, max_tokens=3)
    longer = backend.complete(PROMPT, system=SYSTEM, max_tokens=12)
    assert short.completion_tokens == 3 and longer.completion_tokens > 3
    assert longer.text.startswith(short.text)  # the same reply, cut earlier


def test_a_stop_string_ends_the_reply_before_it(backend: LLMBackend) -> None:
    whole = backend.complete(PROMPT, system=SYSTEM, max_tokens=16).text
    stop = whole[len(whole) // 2 :][:4]  # a piece from the reply's second half
    assert stop.strip(), whole
    cut = backend.complete(PROMPT, system=SYSTEM, max_tokens=16, stop=[stop]).text
    assert stop not in cut and cut == whole[: whole.index(stop)]


def test_the_same_seed_at_temperature_0_gives_the_same_text(backend: LLMBackend) -> None:
    first, again = (backend.complete(PROMPT, system=SYSTEM, max_tokens=10, seed=7) for _ in range(2))
    assert first.text == again.text and first.completion_tokens == again.completion_tokens


def test_json_mode_gives_parseable_json(backend: LLMBackend) -> None:
    reply = backend.complete(PROMPT, system=SYSTEM, json_mode=True, max_tokens=64)
    assert isinstance(json.loads(reply.text), dict), reply.text


def test_the_reply_cache_answers_the_second_call(backend: LLMBackend, tmp_path: Path) -> None:
    cache = ReplyCache(tmp_path / "llm-replies.sqlite")
    first, cached = cached_complete(backend, cache, "v1", PROMPT, system=SYSTEM, max_tokens=6)
    assert not cached and first.completion_tokens > 0
    again, cached = cached_complete(backend, cache, "v1", PROMPT, system=SYSTEM, max_tokens=6)
    assert cached and again == first and len(cache) == 1
    _, cached = cached_complete(backend, cache, "v2", PROMPT, system=SYSTEM, max_tokens=6)  # a new prompt version
    assert not cached and len(cache) == 2
