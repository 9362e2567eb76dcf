"""Build the baseline CRS for a scenario's catalog (used by ``tastesim serve-crs`` and the stress runner)."""

from __future__ import annotations

from collections.abc import Sequence

from tastesim.catalog.profile import ItemProfile
from tastesim.crs.baseline import BaselineCRS, item_texts
from tastesim.embedding import cached_embeddings, make_embedder
from tastesim.paths import default_cache_dir
from tastesim.scenario import Scenario

__all__ = ["build_baseline"]


def build_baseline(scenario: Scenario, item_ids: Sequence[str], profiles: Sequence[ItemProfile]) -> BaselineCRS:
    """A :class:`BaselineCRS` over ``profiles`` with the scenario's embedder (item vectors cached on disk)."""
    embedder = make_embedder(scenario.analyser.embedder)
    cache = scenario.cache_dir or default_cache_dir()
    vectors = cached_embeddings(item_texts(profiles), embedder.name, embedder.embed, cache)
    embedder.embed(["warm up"])  # load the model now, not inside the first request
    return BaselineCRS(list(item_ids), vectors, embedder.embed)
