"""The built-in baseline CRS: embedding retrieval over the catalog using the conversation so far.

Each item is embedded once from its categories and like reasons. A request's query vector is the sum of
its user turns' embeddings, the latest weighing most (halving per earlier turn); items shown earlier in the
conversation are never shown again. Served over HTTP by :func:`serve_baseline` (stdlib threading server).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from tastesim.catalog.profile import ItemProfile
from tastesim.crs.protocol import CRSError, CRSReply, Message

__all__ = ["BaselineCRS", "CRSServer", "item_texts", "serve_baseline"]

Embed = Callable[[Sequence[str]], np.ndarray]
_QUERY_CACHE = 20_000  # distinct user-turn texts whose embeddings are kept


def item_texts(profiles: Sequence[ItemProfile]) -> list[str]:
    """What the baseline knows of each item: its categories and like reasons (never its title)."""
    return [f"{', '.join(p.categories)}. " + ". ".join(r.text for r in p.like) for p in profiles]


@dataclass
class BaselineCRS:
    """Retrieval by cosine between the conversation and the item texts.

    Attributes:
        item_ids: Catalog item ids, in row order of ``item_vectors``.
        item_vectors: Unit item embeddings ``(n_items, d)``.
        embed: Embeds query texts (unit rows); called under a lock, results cached.
    """

    item_ids: list[str]
    item_vectors: np.ndarray
    embed: Embed

    def __post_init__(self) -> None:
        self._lock = threading.Lock()  # held while embedding; guards the cache
        self._waiting_lock = threading.Lock()
        self._waiting: set[str] = set()
        self._cache: dict[str, np.ndarray] = {}
        self._row = {item: i for i, item in enumerate(self.item_ids)}

    def _vectors(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts``; requests that wait for the lock are embedded together in one batch."""
        with self._waiting_lock:
            self._waiting.update(texts)
        with self._lock:
            with self._waiting_lock:
                pending = self._waiting | set(texts)
                self._waiting.clear()
            if len(self._cache) + len(pending) > _QUERY_CACHE:
                self._cache.clear()
            missing = sorted(t for t in pending if t not in self._cache)
            if missing:
                self._cache.update(zip(missing, self.embed(missing), strict=True))
            return np.stack([self._cache[t] for t in texts])

    def recommend(self, messages: Sequence[Message], k: int) -> CRSReply:
        """Items for the conversation ``messages`` (the last one is the user's turn)."""
        said = [m.content for m in messages if m.role == "user" and m.content.strip()]
        if not said:
            raise CRSError("http_4xx", "the conversation has no user text")
        weights = 0.5 ** np.arange(len(said))[::-1]
        query = (weights[:, None] * self._vectors(said)).sum(axis=0)
        scores = self.item_vectors @ query
        shown = [self._row[i] for m in messages for i in m.items if i in self._row]
        scores[shown] = -np.inf
        k = min(k, int(np.isfinite(scores).sum()))
        best = np.argsort(-scores, kind="stable")[:k]
        question = None if len(said) > 1 else "Is there a mood or a kind of story you want more of?"
        return CRSReply(tuple(self.item_ids[i] for i in best), "Here are some picks for you.", question)


def _messages(raw: object) -> list[Message]:
    if not isinstance(raw, list):
        raise CRSError("http_4xx", "'messages' must be a list")
    out = []
    for m in raw:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant", "system"):
            raise CRSError("http_4xx", "each message needs a role (user, assistant or system)")
        if m["role"] == "system":
            continue
        content, items = str(m.get("content") or ""), m.get("items") or []
        if m["role"] == "assistant" and not items and content.startswith("{"):
            try:  # OpenAI mode: the assistant's earlier reply, written back as its JSON content
                items = json.loads(content).get("items", [])
            except (json.JSONDecodeError, AttributeError):
                items = []
        out.append(Message(m["role"], content, tuple(str(i) for i in items)))
    return out


class _Handler(BaseHTTPRequestHandler):
    server: CRSServer
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one segment, at once: without both, keep-alive requests wait ~40 ms each on
    # Nagle's algorithm meeting the client's delayed ACK.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        return None

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/health":
            self._send(200, {"status": "ok", "items": len(self.server.crs.item_ids)})
        else:
            self._send(404, {"error": "GET /health, or POST /recommend or /v1/chat/completions"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise CRSError("http_4xx", "the body must be a JSON object")
            path = self.path.rstrip("/")
            if path == "/recommend":
                reply = self.server.crs.recommend(_messages(body.get("messages")), int(body.get("k", 10)))
                self._send(200, reply.to_json())
            elif path == "/v1/chat/completions":
                reply = self.server.crs.recommend(_messages(body.get("messages")), int(body.get("k", 10)))
                message = {"role": "assistant", "content": json.dumps(reply.to_json())}
                self._send(
                    200,
                    {
                        "object": "chat.completion",
                        "model": body.get("model", "baseline"),
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    },
                )
            else:
                self._send(404, {"error": f"no endpoint {self.path}"})
        except (json.JSONDecodeError, ValueError, TypeError) as err:
            self._send(400, {"error": f"bad request: {err}"})
        except CRSError as err:
            self._send(400, {"error": err.detail})


class CRSServer(ThreadingHTTPServer):
    """A threading HTTP server holding one :class:`BaselineCRS`."""

    daemon_threads = True
    request_queue_size = 2048  # a thousand sessions may connect at once

    def __init__(self, address: tuple[str, int], crs: BaselineCRS) -> None:
        super().__init__(address, _Handler)
        self.crs = crs

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        """A client that hung up (timed out) is its own business; anything else is printed as usual."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the bound socket."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def serve_baseline(crs: BaselineCRS, host: str = "127.0.0.1", port: int = 0, background: bool = True) -> CRSServer:
    """Bind a server for ``crs`` (port 0 = a free port); in a daemon thread when ``background``.

    Call ``server.shutdown()`` then ``server.server_close()`` to stop a background server.
    """
    server = CRSServer((host, port), crs)
    if background:
        threading.Thread(target=server.serve_forever, name="tastesim-crs", daemon=True).start()
    return server
