"""An on-disk (SQLite) cache of LLM replies, and the one cached path to a backend: :func:`cached_complete`.

Item analysis and the conversation writer both ask through it, so each distinct call is made once. Keys
hash the backend, the model, the prompt's version tag, the generation settings and the rendered prompt
(which holds the item's content). Raw reply text is stored, not parsed results, so a better parser
re-reads old replies without new LLM calls. Every reply is committed as soon as it arrives, in WAL mode:
a run killed with ``kill -9`` leaves a consistent database and a re-run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from tastesim.faults import crash_point
from tastesim.llm.backend import LLMBackend, LLMReply

__all__ = ["ReplyCache", "cached_complete", "reply_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    seconds REAL NOT NULL,
    created REAL NOT NULL
)
"""


def reply_key(backend: str, model: str, prompt_version: str, settings: str, prompt: str) -> str:
    """The cache key of one call."""
    h = hashlib.sha256()
    for part in (backend, model, prompt_version, settings, prompt):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


class ReplyCache:
    """A thread-safe SQLite table of replies; the file and its folder are created on first use."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            db.commit()
            self._db = db
        return self._db

    def get(self, key: str) -> LLMReply | None:
        """The stored reply for ``key``, if any."""
        with self._lock:
            row = (
                self._conn()
                .execute("SELECT text, prompt_tokens, completion_tokens, seconds FROM replies WHERE key = ?", (key,))
                .fetchone()
            )
        return None if row is None else LLMReply(row[0], row[1], row[2], row[3])

    def put(self, key: str, backend: str, model: str, prompt_version: str, reply: LLMReply) -> LLMReply:
        """Store one reply, commit at once, and return the reply stored under ``key``.

        The first reply stored for a key stays: when two identical prompts were in flight at once (items
        with the same text), both callers get the same reply, as a cached re-run will.
        """
        with self._lock:
            db = self._conn()
            db.execute(
                "INSERT OR IGNORE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    backend,
                    model,
                    prompt_version,
                    reply.text,
                    reply.prompt_tokens,
                    reply.completion_tokens,
                    reply.seconds,
                    time.time(),
                ),
            )
            db.commit()
        crash_point("llm-reply")  # this reply committed, the ones still in flight not
        stored = self.get(key)
        assert stored is not None
        return stored

    def __len__(self) -> int:
        with self._lock:
            return self._conn().execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        """Close the connection (reopened on the next use)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def cached_complete(
    backend: LLMBackend,
    cache: ReplyCache,
    prompt_version: str,
    prompt: str,
    *,
    system: str | None = None,
    json_mode: bool = False,
    max_tokens: int = 256,
    temperature: float = 0.0,
    seed: int = 0,
    stop: list[str] | None = None,
) -> tuple[LLMReply, bool]:
    """The stored reply to this call, else the backend's reply (stored at once); and whether it was stored.

    The generation arguments are those of :meth:`~tastesim.llm.backend.LLMBackend.complete`; with the
    backend, its model, ``prompt_version`` and ``prompt`` they make the cache key.

    Raises:
        LLMError: When the backend fails (nothing is stored).
    """
    settings = json.dumps([system, json_mode, max_tokens, temperature, seed, stop])
    key = reply_key(backend.name, backend.model, prompt_version, settings, prompt)
    stored = cache.get(key)
    if stored is not None:
        return stored, True
    fresh = backend.complete(
        prompt, system=system, json_mode=json_mode, max_tokens=max_tokens, temperature=temperature, seed=seed, stop=stop
    )
    return cache.put(key, backend.name, backend.model, prompt_version, fresh), False
