"""Run the fidelity evaluation from validated settings: load data, analyse items, train, score, report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tastesim.scenario import AnalyserConfig, DatasetConfig, Scenario, ScenarioError

__all__ = ["FidelityRequest", "run_fidelity"]


class FidelityRequest(BaseModel):
    """What to evaluate and how (the ``tastesim eval fidelity`` options)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str | None = None
    data_dir: Path | None = None
    data_format: Literal["auto", "atomic", "generic"] = "auto"
    seed: int = Field(0, ge=0)
    train_fraction: float = Field(0.8, gt=0, lt=1)
    like_threshold: float = 3.0
    capacity: int = Field(16, ge=1, le=512)
    embedder: Literal["minilm", "hashing"] = "minilm"
    stat_epochs: int = Field(20, ge=1, le=500)
    cache_dir: Path | None = None

    def scenario(self) -> Scenario:
        """The equivalent scenario (for the shared data, analyser and cache code paths)."""
        try:
            return Scenario(
                seed=self.seed,
                dataset=DatasetConfig(name=self.dataset, path=self.data_dir, format=self.data_format),
                analyser=AnalyserConfig(embedder=self.embedder),
                cache_dir=self.cache_dir,
            )
        except ValidationError as err:
            raise ScenarioError("; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())) from err


def run_fidelity(
    request: FidelityRequest, out: Path, command: str, progress: Callable[[str, int, int], None]
) -> tuple[Path, Path]:
    """Evaluate and write ``fidelity.json`` and ``fidelity.md`` into ``out``."""
    from tastesim.catalog.tables import CatalogTables
    from tastesim.embedding import cached_embeddings, make_embedder
    from tastesim.eval.fidelity import fidelity
    from tastesim.eval.report import write_report
    from tastesim.paths import default_cache_dir
    from tastesim.scenario import DecisionConfig
    from tastesim.scoring.factory import bundle_settings
    from tastesim.world.build import load_scenario_dataset, profiles_for

    scenario = request.scenario()
    progress("loading data", 0, 1)
    dataset = load_scenario_dataset(scenario)
    progress("analysing items", 0, 1)
    profiles = profiles_for(dataset, scenario)
    embedder = make_embedder(request.embedder)
    cache = request.cache_dir or default_cache_dir()
    tables, bank = CatalogTables.build(
        profiles, lambda texts: cached_embeddings(texts, embedder.name, embedder.embed, cache)
    )
    settings = bundle_settings(
        DecisionConfig(stat_epochs=request.stat_epochs),
        seed=request.seed,
        train_fraction=request.train_fraction,
        like_threshold=request.like_threshold,
        capacity=request.capacity,
    )
    metrics, facts = fidelity(dataset, tables, bank, settings, progress)
    return write_report(metrics, facts, out, command)
