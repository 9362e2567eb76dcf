"""An async HTTP adapter for a CRS under test: timeouts, safe retries with backoff, a concurrency limit.

Retries happen only where repeating cannot act twice: a refused connection (nothing was sent) and a
``503 Service Unavailable`` (the server says it did not take the request). A timeout, another ``5xx`` or a
malformed body is reported at once as a :class:`~tastesim.crs.protocol.CRSError` of its kind.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import httpx

from tastesim.crs.protocol import CRSError, CRSReply, CRSRequest, parse_openai_reply, parse_reply

__all__ = ["HttpCRS", "HttpStats"]


@dataclass
class HttpStats:
    """Counters of one adapter: requests sent (retries included) and retries."""

    requests: int = 0
    retries: int = 0


class HttpCRS:
    """A CRS reached over HTTP, in the JSON contract or OpenAI-compatible chat mode.

    Use as an async context manager (it owns one ``httpx.AsyncClient``); nothing connects before a request.
    """

    def __init__(
        self,
        url: str,
        *,
        mode: str = "json",
        model: str = "crs",
        timeout_s: float = 10.0,
        retries: int = 2,
        backoff_s: float = 0.05,
        concurrency: int = 100,
    ) -> None:
        if mode not in ("json", "openai"):
            raise ValueError(f"unknown CRS mode {mode!r}; choose json or openai")
        self.url = url
        self.mode = mode
        self.model = model
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.stats = HttpStats()
        self._limit = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> HttpCRS:
        limits = httpx.Limits(max_connections=self._concurrency, max_keepalive_connections=self._concurrency)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout_s),
            limits=limits,
            trust_env=False,
            transport=_transport(self._concurrency),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _body(self, request: CRSRequest) -> dict:
        if self.mode == "json":
            return request.to_json()
        messages = [
            {
                "role": m.role,
                "content": json.dumps({"items": list(m.items), "text": m.content})
                if m.role == "assistant"
                else m.content,
            }
            for m in request.messages
        ]
        return {"model": self.model, "messages": messages, "user": request.session_id, "n": 1}

    async def respond(self, request: CRSRequest) -> CRSReply:
        """Send one turn; raises :class:`CRSError` with the failure's kind."""
        if self._client is None:
            raise RuntimeError("use HttpCRS as 'async with HttpCRS(...) as crs'")
        body = self._body(request)
        async with self._limit:
            for attempt in range(self.retries + 1):
                if attempt:
                    self.stats.retries += 1
                    await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
                try:
                    return await self._send(body)
                except CRSError as err:
                    retry = err.kind == "refused" or (err.kind == "http_5xx" and err.detail.startswith("503"))
                    if not retry or attempt == self.retries:
                        raise
        raise AssertionError("unreachable")

    async def _send(self, body: dict) -> CRSReply:
        assert self._client is not None
        self.stats.requests += 1
        try:
            response = await self._client.post(self.url, json=body)
        except httpx.TimeoutException as err:
            raise CRSError("timeout", f"no reply within {self.timeout_s} s") from err
        except httpx.ConnectError as err:
            raise CRSError("refused", f"cannot connect to {self.url}: {err}") from err
        except httpx.TransportError as err:
            raise CRSError("transport", f"{type(err).__name__}: {err}") from err
        if response.status_code >= 500:
            raise CRSError("http_5xx", f"{response.status_code} {response.text[:120]}")
        if response.status_code >= 400:
            raise CRSError("http_4xx", f"{response.status_code} {response.text[:120]}")
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CRSError("malformed", f"body is not JSON: {response.text[:80]!r}") from err
        return parse_reply(data) if self.mode == "json" else parse_openai_reply(data)


def _transport(connections: int) -> httpx.AsyncBaseTransport | None:
    """The aiohttp transport when aiohttp is installed (much faster under concurrency), else httpx's own."""
    try:
        from tastesim.crs.transport import AiohttpTransport
    except ImportError:
        return None
    return AiohttpTransport(connections)
