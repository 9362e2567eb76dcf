"""An in-test recommender service speaking tastesim's HTTP recommender contract (see
``tastesim.recommenders.http``): most-clicked items first, learned from the ``/feedback`` calls it receives,
and a record of every request so tests can check what the simulator sent."""

from __future__ import annotations

import json
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LearningService"]


class LearningService(ThreadingHTTPServer):
    """A most-clicked recommender over ``items`` (ties in catalog order); ``fail_next`` injects faults."""

    daemon_threads = True

    def __init__(self, items: list[str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.items = items
        self.clicks: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.fail_next: list[int] = []  # HTTP statuses to answer the next requests with

    @property
    def url(self) -> str:
        """Base URL of the service."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def calls(self, path: str) -> list[dict[str, Any]]:
        """Bodies received on ``path``, in order."""
        return [body for got, body in self.requests if got == path]

    def ranking(self) -> list[str]:
        """Items by clicks received so far (then catalog order)."""
        order = {item: i for i, item in enumerate(self.items)}
        return sorted(self.items, key=lambda item: (-self.clicks[item], order[item]))


class _Handler(BaseHTTPRequestHandler):
    server: LearningService

    def log_message(self, format: str, *args: object) -> None:
        return None

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.server.requests.append((self.path, body))
        if self.server.fail_next:
            self._send(self.server.fail_next.pop(0), {"error": "injected"})
            return
        if self.path == "/recommend":
            ranking = self.server.ranking()
            slates = []
            for exclude in body["exclude"]:
                seen = set(exclude)
                slates.append([item for item in ranking if item not in seen][: body["k"]])
            self._send(200, {"slates": slates})
        elif self.path == "/feedback":
            for slate, clicks in zip(body["slates"], body["click"], strict=True):
                self.server.clicks.update(item for item, clicked in zip(slate, clicks, strict=True) if clicked)
            self._send(200, {})
        elif self.path == "/fit":
            self._send(200, {})
        else:
            self._send(404, {"error": self.path})

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
