"""The built-in baseline CRS over HTTP (aiohttp): ``POST /recommend`` (the JSON contract),
``POST /v1/chat/completions`` (OpenAI-compatible) and ``GET /health``.

Request bodies are validated (``400`` naming the field at fault; over 1 MiB, ``413``). Retrieval runs on
:data:`THREADS` worker threads, whose concurrent queries are embedded together in one batch; up to
:data:`WAITING` more requests queue for them, and any beyond that get ``503`` at once, which the
conversation client retries with backoff (see :mod:`tastesim.web`).
"""

from __future__ import annotations

from aiohttp import web

from tastesim.crs.baseline import BaselineCRS
from tastesim.crs.protocol import ChatCompletion, ChatRequest, RecommendRequest
from tastesim.web import DEFAULT_HOST, MAX_BODY, AppServer, Workers, read_body, service_app

__all__ = ["THREADS", "WAITING", "crs_app", "crs_server"]

THREADS = 32  # requests retrieved at once (their query texts share one embedding batch)
WAITING = 2048  # requests that may queue beyond those: a thousand sessions may ask at once


def crs_app(
    crs: BaselineCRS, *, threads: int = THREADS, waiting: int = WAITING, max_body: int = MAX_BODY
) -> web.Application:
    """The HTTP application serving ``crs``."""
    workers = Workers(threads, waiting, "tastesim-crs")
    app = service_app(workers, max_body)

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "items": len(crs.item_ids)})

    async def recommend(request: web.Request) -> web.Response:
        body = await read_body(request, RecommendRequest)
        reply = await workers.run(crs.recommend, body.conversation(), body.k)
        return web.json_response(reply.model_dump(mode="json", exclude_none=True))

    async def chat(request: web.Request) -> web.Response:
        body = await read_body(request, ChatRequest)
        reply = await workers.run(crs.recommend, body.conversation(), body.k)
        return web.json_response(ChatCompletion.of(reply, body.model).model_dump(mode="json"))

    app.router.add_get("/health", health)
    app.router.add_post("/recommend", recommend)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def crs_server(crs: BaselineCRS, host: str = DEFAULT_HOST, port: int = 0, **limits: int) -> AppServer:
    """``crs`` served on ``host:port`` (port 0 picks a free one), bound but not serving yet.

    ``limits`` are :func:`crs_app`'s keyword arguments. Serve with ``serve_forever()`` (in a thread for a
    background server; ``shutdown()`` then ``server_close()`` stop it).

    Raises:
        OSError: When the address cannot be bound.
    """
    return AppServer(crs_app(crs, **limits), host, port)
