"""Where tastesim keeps what it computes once and reuses: profiles, embeddings, trained models, LLM replies."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["content_digest", "default_cache_dir"]


def default_cache_dir() -> Path:
    """``$TASTESIM_CACHE`` or ``~/.cache/tastesim``."""
    return Path(os.environ.get("TASTESIM_CACHE", Path.home() / ".cache" / "tastesim"))


def content_digest(*parts: str) -> str:
    """A short, stable hash of ``parts`` (the key of a cached file)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:20]
