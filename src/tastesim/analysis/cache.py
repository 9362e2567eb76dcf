"""On-disk cache of item profiles, keyed by the catalog's content and the analyser's settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tastesim.catalog.profile import ItemProfile, read_profiles, write_profiles
from tastesim.data.dataset import Dataset
from tastesim.paths import content_digest

__all__ = ["cached_profiles", "catalog_digest"]


def catalog_digest(dataset: Dataset) -> str:
    """Hash of every item's id, categories and text."""
    rows = (
        f"{i}\t{'|'.join(c)}\t{t}" for i, c, t in dataset.items[["item", "categories", "text"]].itertuples(index=False)
    )
    return content_digest(*rows)


def cached_profiles(
    dataset: Dataset, tag: str, build: Callable[[Dataset], list[ItemProfile]], cache_dir: Path
) -> tuple[list[ItemProfile], Path, bool]:
    """Return ``(profiles, path, from_cache)``; ``build`` runs only when no cached file matches."""
    path = Path(cache_dir) / "profiles" / f"{dataset.name}-{content_digest(tag, catalog_digest(dataset))}.jsonl"
    if path.exists():
        return read_profiles(path), path, True
    profiles = build(dataset)
    write_profiles(profiles, path)
    return profiles, path, False
