"""A built-in CRS over HTTP (aiohttp): ``POST /recommend`` (the JSON contract),
``POST /v1/chat/completions`` (OpenAI-compatible, the JSON contract as the message content) and ``GET /health``.

Any engine with ``item_ids`` and ``recommend(messages, k)`` is served: the retrieval baseline, the popularity
floor, the LLM CRS. Request bodies are validated (``400`` naming the field at fault; over 1 MiB, ``413``).
Engines run on worker threads (:data:`THREADS` for retrieval, whose concurrent queries are embedded together
in one batch; one per llama.cpp slot for the LLM CRS); up to :data:`WAITING` more requests queue for them,
and any beyond that get ``503`` at once, which the conversation client retries with backoff (see
:mod:`tastesim.web`). An engine's failure (the LLM's) is a ``500`` naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from aiohttp import web

from tastesim.crs.protocol import ChatCompletion, ChatRequest, CRSReply, Message, RecommendRequest
from tastesim.llm.backend import LLMError
from tastesim.web import DEFAULT_HOST, MAX_BODY, AppServer, Workers, read_body, service_app

__all__ = ["THREADS", "WAITING", "Engine", "crs_app", "crs_server"]


class Engine(Protocol):
    """What a built-in CRS server serves."""

    item_ids: list[str]

    def recommend(self, messages: Sequence[Message], k: int) -> CRSReply:
        """Items for the conversation ``messages``."""
        ...


THREADS = 32  # requests retrieved at once (their query texts share one embedding batch)
WAITING = 2048  # requests that may queue beyond those: a thousand sessions may ask at once


def crs_app(
    crs: Engine, *, threads: int = THREADS, waiting: int = WAITING, max_body: int = MAX_BODY
) -> web.Application:
    """The HTTP application serving ``crs``."""
    workers = Workers(threads, waiting, "tastesim-crs")
    app = service_app(workers, max_body)

    async def answer(conversation: list[Message], k: int) -> CRSReply:
        try:
            return await workers.run(crs.recommend, conversation, k)
        except LLMError as err:  # an LLM engine's failure, which says what went wrong
            raise web.HTTPInternalServerError(text=f"the CRS's LLM failed: {err}") from err

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "items": len(crs.item_ids)})

    async def recommend(request: web.Request) -> web.Response:
        body = await read_body(request, RecommendRequest)
        reply = await answer(body.conversation(), body.k)
        return web.json_response(reply.model_dump(mode="json", exclude_none=True))

    async def chat(request: web.Request) -> web.Response:
        body = await read_body(request, ChatRequest)
        reply = await answer(body.conversation(), body.k)
        return web.json_response(ChatCompletion.of(reply, body.model).model_dump(mode="json"))

    app.router.add_get("/health", health)
    app.router.add_post("/recommend", recommend)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def crs_server(crs: Engine, host: str = DEFAULT_HOST, port: int = 0, **limits: int) -> AppServer:
    """``crs`` served on ``host:port`` (port 0 picks a free one), bound but not serving yet.

    ``limits`` are :func:`crs_app`'s keyword arguments. Serve with ``serve_forever()`` (in a thread for a
    background server; ``shutdown()`` then ``server_close()`` stop it).

    Raises:
        OSError: When the address cannot be bound.
    """
    return AppServer(crs_app(crs, **limits), host, port)
