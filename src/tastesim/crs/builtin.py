"""Build a built-in CRS for a scenario's catalog (used by ``tastesim serve-crs`` and the stress runner):
the retrieval baseline, the popularity floor, or the LLM CRS."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tastesim.catalog.profile import ItemProfile
from tastesim.crs.baseline import BaselineCRS, item_texts
from tastesim.crs.llm import LLMCRS
from tastesim.crs.names import TitleIndex
from tastesim.crs.popularity import PopularityCRS
from tastesim.data import Dataset
from tastesim.embedding import cached_embeddings, make_embedder
from tastesim.paths import default_cache_dir
from tastesim.scenario import LlamaCppSettings, Scenario

__all__ = ["LLM_CRS_MODEL", "build_baseline", "build_llm", "build_popularity"]

LLM_CRS_MODEL = "shipped"  # the Q4_1 SmolLM2 file as shipped: its Q4_0 copy names fewer real titles


def build_baseline(scenario: Scenario, item_ids: Sequence[str], profiles: Sequence[ItemProfile]) -> BaselineCRS:
    """A :class:`BaselineCRS` over ``profiles`` with the scenario's embedder (item vectors cached on disk)."""
    embedder = make_embedder(scenario.analyser.embedder)
    cache = scenario.cache_dir or default_cache_dir()
    vectors = cached_embeddings(item_texts(profiles), embedder.name, embedder.embed, cache)
    embedder.embed(["warm up"])  # load the model now, not inside the first request
    return BaselineCRS(list(item_ids), vectors, embedder.embed)


def build_popularity(scenario: Scenario, dataset: Dataset, profiles: list[ItemProfile]) -> PopularityCRS:
    """A :class:`PopularityCRS` counting the training interactions of the scenario's population (the
    held-out part, where conversation targets come from, is not counted)."""
    from tastesim.world.build import build_parts

    parts = build_parts(scenario, dataset, profiles)
    counts = np.asarray((parts.population.train != 0).sum(axis=0)).ravel()
    return PopularityCRS(list(dataset.items["item"]), counts)


def build_llm(dataset: Dataset, settings: LlamaCppSettings | None = None, seed: int = 0) -> LLMCRS:
    """An :class:`LLMCRS` on the embedded model (``settings``; by default :data:`LLM_CRS_MODEL`, 2 slots),
    naming items of ``dataset``'s catalog. The model is loaded here, not in the first request."""
    from tastesim.llm.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(settings or LlamaCppSettings(model=LLM_CRS_MODEL, parallel=2))
    backend.load()
    index = TitleIndex(list(dataset.items["item"]), [str(t) for t in dataset.items["title"]])
    return LLMCRS(backend, index, seed=seed)
