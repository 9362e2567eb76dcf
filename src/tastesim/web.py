"""What tastesim's two HTTP services share (the built-in CRS and ``tastesim llm serve``), on ``aiohttp.web``.

- :class:`AppServer` binds 127.0.0.1 by default, at construction (a busy port is an ``OSError`` there), then
  serves in the foreground or in a thread with ``serve_forever()`` until ``shutdown()`` from another
  thread: the shape of ``socketserver``, which the CLI and the tests drive.
- :class:`Workers` runs the handlers' blocking work (embedding, llama.cpp generation) on its own threads so
  the event loop keeps answering. It admits at most ``active + waiting`` POST requests at once: ``active``
  are worked on, ``waiting`` queue for a thread (a bounded queue); one more is answered ``503`` at once,
  with ``Retry-After``, which a client may retry safely (nothing was done). GET requests (health, model
  lists) are never queued.
- :func:`service_app` limits request bodies to ``max_body`` bytes (1 MiB; more is ``413``) and answers every
  HTTP error as JSON ``{"error": "..."}``; :func:`read_body` validates a JSON body with a pydantic model
  (``400`` with the fields at fault).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

__all__ = ["DEFAULT_HOST", "MAX_BODY", "AppServer", "Workers", "bearer_auth", "read_body", "service_app"]

DEFAULT_HOST = "127.0.0.1"
MAX_BODY = 1 << 20  # bytes of one request body
_SHUTDOWN_S = 5.0  # seconds in-flight requests get to finish when a server stops

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Workers:
    """Threads for blocking work, and the admission limit of the requests that wait for them.

    Args:
        active: Threads, hence requests worked on at once.
        waiting: Requests that may queue for a thread; beyond that a request is answered ``503``.
        name: Prefix of the threads' names.
    """

    def __init__(self, active: int, waiting: int, name: str) -> None:
        self.active = active
        self.waiting = waiting
        self._pool = ThreadPoolExecutor(max_workers=active, thread_name_prefix=name)
        self._admitted = 0  # touched on the event loop only

    @web.middleware
    async def admit(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Middleware: let a POST request in while fewer than ``active + waiting`` are in; else ``503``."""
        if request.method != "POST":
            return await handler(request)
        if self._admitted >= self.active + self.waiting:
            raise web.HTTPServiceUnavailable(
                text=f"busy: {self._admitted} requests in progress or queued; retry later", headers={"Retry-After": "1"}
            )
        self._admitted += 1
        try:
            return await handler(request)
        finally:
            self._admitted -= 1

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a worker thread, awaited without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Stop the threads once their current work is done; queued work is dropped."""
        self._pool.shutdown(wait=False, cancel_futures=True)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer an HTTP error as ``{"error": text}`` (aiohttp's own errors, 404 and 413 included, are plain text)."""
    try:
        return await handler(request)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        headers = {k: v for k, v in err.headers.items() if k.lower() not in ("content-type", "content-length")}
        return web.json_response({"error": err.text or err.reason}, status=err.status, headers=headers)


def bearer_auth(key: str, open_paths: tuple[str, ...] = ()) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Middleware: requests must carry ``Authorization: Bearer KEY`` (``401`` otherwise), except GET requests
    to ``open_paths`` (health checks)."""
    expected = f"Bearer {key}"

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "GET" and request.path in open_paths:
            return await handler(request)
        if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
            raise web.HTTPUnauthorized(text="missing or wrong API key: send Authorization: Bearer KEY")
        return await handler(request)

    return check


def service_app(workers: Workers, max_body: int = MAX_BODY) -> web.Application:
    """An application with the body limit, JSON errors and ``workers``' admission; it closes ``workers``."""
    app = web.Application(client_max_size=max_body, middlewares=[_json_errors, workers.admit])

    async def close_workers(_: web.Application) -> None:
        workers.close()

    app.on_cleanup.append(close_workers)
    return app


async def read_body(request: web.Request, model: type[M]) -> M:
    """The request's JSON body validated by ``model``.

    Raises:
        web.HTTPBadRequest: For a body that is not JSON, or not what ``model`` describes (the message names
            each field at fault).
        web.HTTPRequestEntityTooLarge: For a body over the application's ``client_max_size``.
    """
    raw = await request.read()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise web.HTTPBadRequest(text=f"invalid JSON body: {err}") from err
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg'].removeprefix('Value error, ')}" for e in err.errors()
        )
        raise web.HTTPBadRequest(text=f"invalid request body: {problems}") from err


class AppServer:
    """An aiohttp application on a socket bound at construction.

    Args:
        app: The application.
        host: Address to bind; the loopback interface by default.
        port: Port to bind; 0 picks a free one.

    Raises:
        OSError: When the address cannot be bound (port busy, unknown host).
    """

    def __init__(self, app: web.Application, host: str = DEFAULT_HOST, port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.app = app
        self._socket = socket.create_server((host, port), family=family, backlog=2048)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = False
        self._stopped = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` of the bound socket."""
        host, port = self._socket.getsockname()[:2]
        return host, port

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound socket."""
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def serve_forever(self) -> None:
        """Answer requests until :meth:`shutdown` (or Ctrl-C, raised as ``KeyboardInterrupt``)."""
        try:
            asyncio.run(self._serve())
        finally:
            self._stopped.set()

    async def _serve(self) -> None:
        with self._lock:
            if self._stopping:
                return
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        runner = web.AppRunner(self.app, handle_signals=False, access_log=None, shutdown_timeout=_SHUTDOWN_S)
        await runner.setup()
        try:
            await web.SockSite(runner, self._socket).start()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` (called from another thread) and wait until it has returned."""
        with self._lock:
            self._stopping = True
            loop, stop = self._loop, self._stop
        if loop is None or stop is None:
            return  # never served
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:
            return  # the loop has already ended
        self._stopped.wait()

    def server_close(self) -> None:
        """Close the listening socket."""
        self._socket.close()
