"""On-disk cache of item profiles and reason embeddings, keyed by content hashes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tastesim.analysis.profile import ItemProfile, read_profiles, write_profiles
from tastesim.data.dataset import Dataset

__all__ = ["cached_embeddings", "cached_profiles", "default_cache_dir"]


def default_cache_dir() -> Path:
    """``$TASTESIM_CACHE`` or ``~/.cache/tastesim``."""
    return Path(os.environ.get("TASTESIM_CACHE", Path.home() / ".cache" / "tastesim"))


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:20]


def catalog_digest(dataset: Dataset) -> str:
    """Hash of every item's id, categories and text."""
    rows = (
        f"{i}\t{'|'.join(c)}\t{t}" for i, c, t in dataset.items[["item", "categories", "text"]].itertuples(index=False)
    )
    return _digest(*rows)


def cached_profiles(
    dataset: Dataset, tag: str, build: Callable[[Dataset], list[ItemProfile]], cache_dir: Path
) -> tuple[list[ItemProfile], Path, bool]:
    """Return ``(profiles, path, from_cache)``; ``build`` runs only when no cached file matches."""
    path = Path(cache_dir) / "profiles" / f"{dataset.name}-{_digest(tag, catalog_digest(dataset))}.jsonl"
    if path.exists():
        return read_profiles(path), path, True
    profiles = build(dataset)
    write_profiles(profiles, path)
    return profiles, path, False


def cached_embeddings(
    texts: Sequence[str], model: str, embed: Callable[[Sequence[str]], np.ndarray], cache_dir: Path
) -> np.ndarray:
    """Embeddings of ``texts`` (in order), computed once per distinct text list and model."""
    path = Path(cache_dir) / "embeddings" / f"{_digest(model, *texts)}.npy"
    if path.exists():
        return np.load(path)
    vectors = embed(texts).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)
    return vectors
