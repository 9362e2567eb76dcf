"""Recommenders under test: the batched protocol with feedback, the baselines, matrix factorisation, a
sequential model (SASRec), the diversity re-ranker and a service over HTTP; :func:`recommender_for` builds
the one a scenario names."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tastesim.recommenders.base import Feedback, Recommender, ScoreRecommender, SlateRequest, top_k_unblocked
from tastesim.scenario import RecommenderConfig

__all__ = [
    "Feedback",
    "Recommender",
    "ScoreRecommender",
    "SlateRequest",
    "recommender_for",
    "top_k_unblocked",
]


def recommender_for(
    config: RecommenderConfig,
    item_vectors: np.ndarray,
    item_ids: Sequence[str],
    users: Sequence[str],
    *,
    sequences: Sequence[np.ndarray | tuple[np.ndarray, np.ndarray]] | None = None,
) -> Recommender:
    """The recommender a scenario names.

    Args:
        config: The scenario's recommender section.
        item_vectors: Unit content vector per item (the diversity re-ranker's redundancy).
        item_ids: Catalog item ids in row order (the HTTP contract speaks ids).
        users: The real user behind each agent (sent to an HTTP service).
        sequences: Each agent's training items in time order (for ``sasrec``; catalog order without them).
    """
    from tastesim.recommenders.baselines import ItemKNNRecommender, PopularityRecommender, RandomRecommender
    from tastesim.recommenders.http import HttpRecommender
    from tastesim.recommenders.mf import MatrixFactorisation
    from tastesim.recommenders.rerank import DiversityReranker
    from tastesim.recommenders.sequential import SequentialRecommender

    if config.name == "diverse":
        return DiversityReranker(item_vectors, neighbours=config.neighbours)
    if config.name == "itemknn":
        return ItemKNNRecommender(config.neighbours)
    if config.name == "mf":
        return MatrixFactorisation(factors=config.factors)
    if config.name == "sasrec":
        return SequentialRecommender(sequences, dim=min(config.factors, 64))
    if config.name == "http":
        assert config.url is not None  # the scenario validates it
        return HttpRecommender(config.url, item_ids, users, timeout_s=config.timeout_s)
    return {"random": RandomRecommender, "popularity": PopularityRecommender}[config.name]()
