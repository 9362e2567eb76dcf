"""A loopback server speaking the Ollama HTTP API, backed by the embedded llama.cpp model.

For users without Ollama and for tests of the ``ollama`` backend through the real ``ChatOllama`` client:
``/api/chat`` and ``/api/generate`` (NDJSON streaming or one JSON object), ``/api/tags``, ``/api/version``.
Every model name is answered by the one loaded model. Replies are generated whole, then streamed as one
content chunk and a closing ``done`` chunk, which is what Ollama clients read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tastesim.llm.backend import LLMError, LLMReply
from tastesim.llm.llamacpp import LlamaCppBackend

__all__ = ["OllamaApiServer", "make_server"]

SERVED_NAME = "smollm2:135m"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class OllamaApiServer(ThreadingHTTPServer):
    """An HTTP server whose handler answers Ollama API calls from ``backend``."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], backend: LlamaCppBackend, served_name: str = SERVED_NAME) -> None:
        super().__init__(address, _Handler)
        self.backend = backend
        self.served_name = served_name

    @property
    def url(self) -> str:
        """``http://host:port`` of the listening socket."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def make_server(backend: LlamaCppBackend, port: int = 11434, host: str = "127.0.0.1") -> OllamaApiServer:
    """Bind the server (port 0 picks a free one); call ``serve_forever()`` to answer requests."""
    return OllamaApiServer((host, port), backend)


def _options(body: dict[str, Any]) -> dict[str, Any]:
    opts = body.get("options") or {}
    out: dict[str, Any] = {
        "max_tokens": int(opts.get("num_predict") or 256),
        "temperature": float(opts.get("temperature", 0.8)),
        "seed": int(opts.get("seed", 0)),
        "json_mode": bool(body.get("format")),
    }
    if opts.get("stop"):
        out["stop"] = list(opts["stop"])
    return out


class _Handler(BaseHTTPRequestHandler):
    server: OllamaApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the CLI prints its own one-line banner."""

    def do_GET(self) -> None:
        if self.path == "/api/tags":
            name = self.server.served_name
            model = {"name": name, "model": name, "modified_at": _now(), "size": 0, "digest": "", "details": {}}
            self._send(200, {"models": [model]})
        elif self.path == "/api/version":
            self._send(200, {"version": "0.6.3"})
        elif self.path == "/":
            self._send_text(200, "Ollama is running")
        else:
            self._send(404, {"error": f"no route {self.path}"})

    def do_HEAD(self) -> None:
        self._send_text(200, "")

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body is not a JSON object")
        except ValueError as err:
            self._send(400, {"error": f"invalid JSON body: {err}"})
            return
        backend = self.server.backend
        try:
            if self.path == "/api/chat":
                messages = [{"role": m["role"], "content": m.get("content", "")} for m in body.get("messages", [])]
                reply = backend.chat(messages, **_options(body))
                self._answer(body, reply, lambda text: {"message": {"role": "assistant", "content": text}})
            elif self.path == "/api/generate":
                prompt = body.get("prompt", "")
                reply = backend.complete(prompt, system=body.get("system") or None, **_options(body))
                self._answer(body, reply, lambda text: {"response": text})
            else:
                self._send(404, {"error": f"no route {self.path}"})
        except (LLMError, KeyError, TypeError) as err:
            self._send(500, {"error": str(err)})

    def _answer(self, body: dict[str, Any], reply: LLMReply, content: Any) -> None:
        head = {"model": body.get("model", self.server.served_name), "created_at": _now()}
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
        if body.get("stream", True):
            lines = [head | content(reply.text) | {"done": False}, head | {"created_at": _now()} | content("") | tail]
            self._send_lines(lines)
        else:
            self._send(200, head | content(reply.text) | tail)

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        self._write(status, "application/json; charset=utf-8", json.dumps(payload).encode())

    def _send_text(self, status: int, text: str) -> None:
        self._write(status, "text/plain; charset=utf-8", text.encode())

    def _send_lines(self, lines: list[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in lines:
            data = json.dumps(line).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _write(self, status: int, kind: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
