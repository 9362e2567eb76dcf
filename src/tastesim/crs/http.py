"""An async HTTP adapter for a CRS under test: timeouts, safe retries with backoff, a concurrency limit.

Retries happen only where repeating cannot act twice: a refused connection (nothing was sent) and a
``503 Service Unavailable`` (the server says it did not take the request), ``retries`` more attempts at
most, waiting ``backoff_s`` seconds, then twice that, and so on. A timeout, another ``5xx`` or a malformed
body is reported at once as a :class:`~tastesim.crs.protocol.CRSError` of its kind. Replies of the json
and openai modes are validated into one model (:func:`~tastesim.crs.protocol.read_reply`); in chat mode the
free text of a chat completion is mapped to catalog items by a :class:`~tastesim.crs.names.TitleIndex`.
An API key, when given, is sent as ``Authorization: Bearer``; the runner reads it from the environment.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential

from tastesim.crs.names import TitleIndex
from tastesim.crs.protocol import CRSError, CRSReply, CRSRequest, Mode, read_chat_text, read_reply
from tastesim.crs.transport import AiohttpTransport, ReplyTooLarge

__all__ = ["CHAT_EXAMPLE", "CHAT_SYSTEM", "HttpCRS", "HttpStats"]

CHAT_SYSTEM = (
    "You are a movie recommender. Answer every request with a list of {k} movie titles that fit it, "
    "each with its year, separated by semicolons, and nothing else."
)
CHAT_EXAMPLE = (  # one worked exchange before the dialogue: small models copy its shape
    ("user", "I want a funny animated movie for kids."),
    ("assistant", "Toy Story (1995); Aladdin (1992); The Lion King (1994); Babe (1995); Beauty and the Beast (1991)"),
)


@dataclass
class HttpStats:
    """Counters of one adapter: requests sent (retries included), retries, names matching no item (chat)."""

    requests: int = 0
    retries: int = 0
    unmatched_names: int = 0


class HttpCRS:
    """A CRS reached over HTTP, in the JSON contract or OpenAI-compatible chat mode.

    Use as an async context manager (it owns one ``httpx.AsyncClient``); nothing connects before a request.
    """

    def __init__(
        self,
        url: str,
        *,
        mode: Mode = "json",
        model: str = "crs",
        timeout_s: float = 10.0,
        retries: int = 2,
        backoff_s: float = 0.05,
        concurrency: int = 100,
        api_key: str | None = None,
        titles: TitleIndex | None = None,
    ) -> None:
        if mode not in ("json", "openai", "chat"):
            raise ValueError(f"unknown CRS mode {mode!r}; choose json, openai or chat")
        if mode == "chat" and titles is None:
            raise ValueError("chat mode maps the names a CRS writes to items: give titles (a TitleIndex)")
        self.api_key = api_key
        self.titles = titles
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
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else None
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(self.timeout_s),
            limits=limits,
            trust_env=False,
            transport=AiohttpTransport(self._concurrency),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _body(self, request: CRSRequest) -> dict:
        if self.mode == "json":
            return request.to_json()
        if self.mode == "chat":
            turns = [{"role": "system", "content": CHAT_SYSTEM.format(k=min(request.k, 20))}]
            turns += [{"role": role, "content": text} for role, text in CHAT_EXAMPLE]
            turns += [{"role": m.role, "content": m.content} for m in request.messages]
            return {"model": self.model, "messages": turns, "max_tokens": 200, "temperature": 0,
                    "user": request.session_id}  # fmt: skip
        messages = [
            {
                "role": m.role,
                "content": CRSReply(items=m.items, text=m.content).model_dump_json(exclude_none=True)
                if m.role == "assistant"
                else m.content,
            }
            for m in request.messages
        ]
        return {"model": self.model, "messages": messages, "user": request.session_id, "n": 1, "k": request.k}

    async def respond(self, request: CRSRequest) -> CRSReply:
        """Send one turn; raises :class:`CRSError` with the failure's kind."""
        if self._client is None:
            raise RuntimeError("use HttpCRS as 'async with HttpCRS(...) as crs'")
        retrying = AsyncRetrying(  # one per call: a retrying object keeps the state of the call it runs
            retry=retry_if_exception(_safe_to_repeat),
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=self.backoff_s),
            before_sleep=self._count_retry,
            reraise=True,
        )
        body = self._body(request)
        async with self._limit:
            reply = await retrying(self._send, body)
        if self.mode != "chat":
            return reply
        assert self.titles is not None
        shown = [i for m in request.messages for i in m.items]
        items, missed = self.titles.items(reply.text, exclude=shown)
        self.stats.unmatched_names += missed
        return CRSReply(items=items[: request.k], text=reply.text)

    def _count_retry(self, _: RetryCallState) -> None:
        self.stats.retries += 1

    async def _send(self, body: dict) -> CRSReply:
        assert self._client is not None
        self.stats.requests += 1
        try:
            response = await self._client.post(self.url, json=body)
        except httpx.TimeoutException as err:
            raise CRSError("timeout", f"no reply within {self.timeout_s} s") from err
        except httpx.ConnectError as err:
            raise CRSError("refused", f"cannot connect to {self.url}: {err}") from err
        except ReplyTooLarge as err:
            raise CRSError("malformed", str(err)) from err
        except httpx.TransportError as err:
            raise CRSError("transport", f"{type(err).__name__}: {err}") from err
        status = response.status_code
        if status >= 400:
            kind = "http_5xx" if status >= 500 else "http_4xx"
            raise CRSError(kind, f"{status} {response.text[:120]}", status)
        if self.mode == "chat":
            return CRSReply(items=(), text=read_chat_text(response.content))
        return read_reply(response.content, self.mode)


def _safe_to_repeat(err: BaseException) -> bool:
    """A refused connection (nothing was sent) or a 503 (the server did not take the request)."""
    return isinstance(err, CRSError) and (err.kind == "refused" or err.status == 503)
