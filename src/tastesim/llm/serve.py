"""A loopback server speaking the Ollama HTTP API, and OpenAI's chat completions, backed by the embedded
llama.cpp model (``tastesim llm serve``).

For users without Ollama and for tests of the ``ollama`` backend through the real ``ChatOllama`` client:
``POST /api/chat`` and ``POST /api/generate`` (NDJSON streaming or one JSON object), ``GET /api/tags``,
``GET /api/version`` and ``GET /``. For OpenAI-compatible clients (an LLM as a CRS, ``crs_mode: chat``):
``POST /v1/chat/completions`` (one JSON object; ``stream: true`` is refused with ``400``) and
``GET /v1/models``. Every model name is answered by the one loaded model. With an API key, every request but
the health check ``GET /`` needs ``Authorization: Bearer KEY`` (``401`` otherwise). Replies are
generated whole on a worker thread (one per llama.cpp slot, see :class:`~tastesim.web.Workers` for the
queue and the ``503`` beyond it), then streamed as one content chunk and a closing ``done`` chunk, which
is what Ollama clients read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from tastesim.llm.backend import LLMError, LLMReply
from tastesim.llm.llamacpp import LlamaCppBackend
from tastesim.web import DEFAULT_HOST, AppServer, Workers, bearer_auth, read_body, service_app

__all__ = ["SERVED_NAME", "ollama_app", "ollama_server"]

SERVED_NAME = "smollm2:135m"
_WAITING = 64  # generation requests that may queue for a llama.cpp slot


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)  # Ollama clients send more than this server reads


class _Options(_Wire):
    num_predict: int | None = None
    temperature: float = 0.8  # Ollama's default
    seed: int = 0
    stop: list[str] | None = None


class _Turn(_Wire):
    role: str
    content: str = ""


class _Request(_Wire):
    model: str = SERVED_NAME
    stream: bool = True
    format: str | dict[str, Any] | None = None
    options: _Options = _Options()

    def generation(self) -> dict[str, Any]:
        """Keyword arguments of the backend's ``complete``/``chat``."""
        opts = self.options
        return {
            "max_tokens": opts.num_predict or 256,
            "temperature": opts.temperature,
            "seed": opts.seed,
            "json_mode": bool(self.format),
            "stop": opts.stop or None,
        }


class _ChatRequest(_Request):
    messages: list[_Turn] = []


class _OpenAIRequest(_Wire):
    model: str = SERVED_NAME
    messages: list[_Turn]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = 1.0  # OpenAI's default
    seed: int = 0
    stop: str | list[str] | None = None
    stream: bool = False

    def generation(self) -> dict[str, Any]:
        """Keyword arguments of the backend's ``chat``."""
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        limit = self.max_completion_tokens or self.max_tokens or 256
        return {"max_tokens": limit, "temperature": self.temperature, "seed": self.seed, "stop": stop or None}


class _GenerateRequest(_Request):
    prompt: str = ""
    system: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def _answer(
    request: web.Request, body: _Request, reply: LLMReply, content: Callable[[str], dict[str, Any]]
) -> web.StreamResponse:
    """One JSON object, or (``stream``, Ollama's default) NDJSON: the content chunk, then the ``done`` chunk."""
    head = {"model": body.model, "created_at": _now()}
    tail = {
        "done": True,
        "done_reason": "stop",
        "total_duration": int(reply.seconds * 1e9),
        "load_duration": 0,
        "prompt_eval_count": reply.prompt_tokens,
        "prompt_eval_duration": 0,
        "eval_count": reply.completion_tokens,
        "eval_duration": int(reply.seconds * 1e9),
    }
    if not body.stream:
        return web.json_response(head | content(reply.text) | tail)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for line in (head | content(reply.text) | {"done": False}, head | {"created_at": _now()} | content("") | tail):
        await response.write(json.dumps(line).encode() + b"\n")
    await response.write_eof()
    return response


def ollama_app(backend: LlamaCppBackend, served_name: str = SERVED_NAME, api_key: str | None = None) -> web.Application:
    """The Ollama API (and OpenAI's chat completions) over ``backend``; one worker thread per llama.cpp slot
    (``parallel``); with ``api_key``, requests must carry it."""
    workers = Workers(backend.settings.parallel, _WAITING, "tastesim-llm")
    app = service_app(workers)
    if api_key:
        app.middlewares.insert(1, bearer_auth(api_key, open_paths=("/",)))  # inside the JSON errors

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await read_body(request, _ChatRequest)
        messages = [{"role": m.role, "content": m.content} for m in body.messages]
        try:
            reply = await workers.run(backend.chat, messages, **body.generation())
        except LLMError as err:
            raise web.HTTPInternalServerError(text=str(err)) from err
        return await _answer(request, body, reply, lambda text: {"message": {"role": "assistant", "content": text}})

    async def generate(request: web.Request) -> web.StreamResponse:
        body = await read_body(request, _GenerateRequest)
        try:
            reply = await workers.run(backend.complete, body.prompt, system=body.system or None, **body.generation())
        except LLMError as err:
            raise web.HTTPInternalServerError(text=str(err)) from err
        return await _answer(request, body, reply, lambda text: {"response": text})

    async def openai_chat(request: web.Request) -> web.Response:
        body = await read_body(request, _OpenAIRequest)
        if body.stream:
            raise web.HTTPBadRequest(text="stream: streaming is not supported; send stream: false")
        messages = [{"role": m.role, "content": m.content} for m in body.messages]
        try:
            reply = await workers.run(backend.chat, messages, **body.generation())
        except LLMError as err:
            raise web.HTTPInternalServerError(text=str(err)) from err
        usage = {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        }
        choice = {"index": 0, "message": {"role": "assistant", "content": reply.text}, "finish_reason": "stop"}
        created = int(datetime.now(UTC).timestamp())
        completion = {"id": f"chatcmpl-{created}", "object": "chat.completion", "created": created}
        return web.json_response(completion | {"model": body.model, "choices": [choice], "usage": usage})

    async def models(_: web.Request) -> web.Response:
        model = {"id": served_name, "object": "model", "owned_by": "tastesim"}
        return web.json_response({"object": "list", "data": [model]})

    async def tags(_: web.Request) -> web.Response:
        model = {"name": served_name, "model": served_name, "modified_at": _now(), "size": 0, "digest": ""}
        return web.json_response({"models": [model | {"details": {}}]})

    async def version(_: web.Request) -> web.Response:
        return web.json_response({"version": "0.6.3"})

    async def root(_: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    app.router.add_post("/api/chat", chat)
    app.router.add_post("/api/generate", generate)
    app.router.add_get("/api/tags", tags)
    app.router.add_get("/api/version", version)
    app.router.add_get("/", root)
    app.router.add_post("/v1/chat/completions", openai_chat)
    app.router.add_get("/v1/models", models)
    return app


def ollama_server(
    backend: LlamaCppBackend, host: str = DEFAULT_HOST, port: int = 11434, api_key: str | None = None
) -> AppServer:
    """The Ollama API over ``backend``, bound to ``host:port`` (port 0 picks a free one); not serving yet.

    Raises:
        OSError: When the address cannot be bound.
    """
    return AppServer(ollama_app(backend, api_key=api_key), host, port)
