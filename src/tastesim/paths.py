"""Where tastesim keeps what it computes once and reuses: profiles, embeddings, trained models, LLM replies."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from tastesim.faults import crash_point

__all__ = ["atomic_write", "atomic_write_text", "content_digest", "default_cache_dir"]


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


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Write ``path`` all or nothing: ``write(tmp)`` fills a temporary file beside it, which is flushed to disk
    (fsync) and renamed over ``path``; the folder is synced too, so a crash leaves the old file or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # same suffix: np.save would add one
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        crash_point("atomic-write")  # the new file is complete beside the old one, not yet in its place
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """:func:`atomic_write` of UTF-8 text."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
