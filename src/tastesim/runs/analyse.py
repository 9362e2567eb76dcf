"""What ``tastesim analyze`` does, apart from printing: resolve the catalog and analyser, run, save."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from tastesim.analysis.llm_analyser import AnalysisStats, Progress, analyse_with_config
from tastesim.catalog.profile import ItemProfile, write_profiles
from tastesim.data import BUILTIN_DATASETS, load_dataset, training_view
from tastesim.data.dataset import Dataset
from tastesim.data.reviews import catalog_from_reviews, load_reviews
from tastesim.paths import atomic_write
from tastesim.scenario import AnalyserConfig, DatasetConfig, Scenario, ScenarioError, load_scenario

__all__ = ["AnalyzeRequest", "resolve", "run_analysis", "save_profiles"]


@dataclass(frozen=True)
class AnalyzeRequest:
    """The command line of ``tastesim analyze``; empty fields keep the scenario's (or default) values."""

    scenario: Path | None = None
    dataset: str | None = None
    backend: str | None = None
    model: str | None = None
    base_url: str | None = None
    limit: int | None = None
    reviews: Path | None = None
    cache_dir: Path | None = None
    reviews_per_item: int | None = None
    max_tokens: int | None = None


def resolve(request: AnalyzeRequest) -> tuple[Scenario, Dataset]:
    """The scenario with the request's overrides applied, and its catalog (first ``limit`` items).

    Raises:
        ScenarioError: For an invalid override (the message names the option).
    """
    scenario = load_scenario(request.scenario) if request.scenario else Scenario()
    updates = {
        "kind": request.backend,
        "model": request.model,
        "base_url": request.base_url,
        "reviews": request.reviews.resolve() if request.reviews else None,
        "reviews_per_item": request.reviews_per_item,
        "max_tokens": request.max_tokens,
    }
    try:
        analyser = AnalyserConfig.model_validate(
            scenario.analyser.model_dump() | {k: v for k, v in updates.items() if v is not None}
        )
        data_cfg = scenario.dataset
        if request.dataset is not None:
            named = request.dataset in BUILTIN_DATASETS
            data_cfg = DatasetConfig(name=request.dataset) if named else DatasetConfig(path=Path(request.dataset))
    except ValidationError as err:
        problem = err.errors()[0]
        field = ".".join(str(p) for p in problem["loc"]) or "value"
        raise ScenarioError(f"{field}: {problem['msg'].removeprefix('Value error, ')}") from err
    scenario = scenario.model_copy(
        update={"analyser": analyser, "dataset": data_cfg, "cache_dir": request.cache_dir or scenario.cache_dir}
    )
    if request.reviews is not None and request.dataset is None and request.scenario is None:
        dataset = catalog_from_reviews(load_reviews(request.reviews), request.reviews.stem)
    else:  # item analysis sees the training part of the reviews only
        dataset = training_view(
            load_dataset(data_cfg.name, data_cfg.path, data_cfg.format), scenario.population.train_fraction
        )
    if request.limit is not None:
        items = dataset.items.head(request.limit)
        log = dataset.interactions[dataset.interactions["item"].isin(set(items["item"]))]
        dataset = replace(dataset, interactions=log.reset_index(drop=True), items=items.reset_index(drop=True))
    return scenario, dataset


def run_analysis(request: AnalyzeRequest, progress: Progress | None = None) -> tuple[list[ItemProfile], AnalysisStats]:
    """Profile the requested catalog; LLM replies are cached, so a re-run (or a resumed one) is fast."""
    from tastesim.paths import default_cache_dir
    from tastesim.world.build import profiles_for

    scenario, dataset = resolve(request)
    offline_scenario = scenario.model_copy(
        update={"analyser": scenario.analyser.model_copy(update={"kind": "keyphrase", "profiles": None})}
    )
    if scenario.analyser.kind == "keyphrase":
        start = time.perf_counter()
        profiles = profiles_for(dataset, offline_scenario)
        n = len(profiles)
        return profiles, AnalysisStats(items=n, valid=n, seconds=time.perf_counter() - start)
    return analyse_with_config(
        dataset,
        scenario.analyser,
        scenario.cache_dir or default_cache_dir(),
        lambda catalog: profiles_for(catalog, offline_scenario),
        progress=progress,
    )


def save_profiles(profiles: list[ItemProfile], path: Path) -> None:
    """Write profiles as JSON lines (``.jsonl``, what ``analyser.profiles`` reads) or parquet, atomically."""
    path = Path(path)
    if path.suffix.lower() != ".parquet":
        write_profiles(profiles, path)
        return
    rows = [
        {
            "item": p.item,
            "categories": list(p.categories),
            "like": [{"text": r.text, "keywords": list(r.keywords), "evidence": r.evidence} for r in p.like],
            "dislike": [{"text": r.text, "keywords": list(r.keywords), "evidence": r.evidence} for r in p.dislike],
            "source": p.source,
        }
        for p in profiles
    ]
    atomic_write(path, lambda tmp: pd.DataFrame(rows).to_parquet(tmp, index=False))
