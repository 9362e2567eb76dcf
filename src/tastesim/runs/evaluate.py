"""Run the fidelity evaluation from validated settings: load data, analyse items, train, score, report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tastesim.catalog.profile import ItemProfile
from tastesim.data.dataset import Dataset
from tastesim.scenario import AnalyserConfig, DatasetConfig, PopulationConfig, Scenario, ScenarioError

__all__ = ["FidelityRequest", "profile_variants", "run_fidelity"]


class FidelityRequest(BaseModel):
    """What to evaluate and how (the ``tastesim eval fidelity`` options)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str | None = None
    data_dir: Path | None = None
    data_format: Literal["auto", "atomic", "generic", "amazon", "yelp"] = "auto"
    seed: int = Field(0, ge=0)
    train_fraction: float = Field(0.8, gt=0, lt=1)
    like_threshold: float = 3.0
    capacity: int = Field(16, ge=1, le=512)
    embedder: Literal["minilm", "hashing"] = "minilm"
    analyser: Literal["keyphrase", "llamacpp", "ollama"] = "keyphrase"
    model: str | None = None
    reviews_per_item: int = Field(5, ge=0, le=100)
    stat_epochs: int = Field(20, ge=1, le=500)
    cache_dir: Path | None = None

    def scenario(self) -> Scenario:
        """The equivalent scenario (for the shared data, analyser and cache code paths)."""
        try:
            return Scenario(
                seed=self.seed,
                dataset=DatasetConfig(name=self.dataset, path=self.data_dir, format=self.data_format),
                population=PopulationConfig(train_fraction=self.train_fraction, like_threshold=self.like_threshold),
                analyser=AnalyserConfig(
                    kind=self.analyser, embedder=self.embedder, model=self.model, reviews_per_item=self.reviews_per_item
                ),
                cache_dir=self.cache_dir,
            )
        except ValidationError as err:
            raise ScenarioError("; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())) from err


def profile_variants(dataset: Dataset, scenario: Scenario) -> dict[str, list[ItemProfile]]:
    """Item profiles to compare, by name. An LLM analyser on a dataset with reviews gives three: the
    ``objective`` path alone (item facts), the ``subjective`` path alone (training reviews) and ``both``
    (what a run uses); otherwise the analyser's one set of profiles (``keyphrase`` or ``objective``)."""
    from tastesim.analysis.llm_analyser import analyse_with_config
    from tastesim.data import training_view
    from tastesim.paths import default_cache_dir
    from tastesim.world.build import profiles_for

    kind = scenario.analyser.kind
    view = training_view(dataset, scenario.population.train_fraction)
    if kind == "keyphrase":
        return {"keyphrase": profiles_for(dataset, scenario)}
    if view.reviews is None or scenario.analyser.reviews_per_item == 0:
        return {"objective": profiles_for(dataset, scenario)}
    offline = scenario.model_copy(update={"analyser": scenario.analyser.model_copy(update={"kind": "keyphrase"})})
    cache = scenario.cache_dir or default_cache_dir()
    return {
        part: analyse_with_config(
            view, scenario.analyser, cache, lambda catalog: profiles_for(catalog, offline), part=part
        )[0]
        for part in ("objective", "subjective", "both")
    }


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
    from tastesim.world.build import load_scenario_dataset

    scenario = request.scenario()
    progress("loading data", 0, 1)
    dataset = load_scenario_dataset(scenario)
    progress("analysing items", 0, 1)
    variants = profile_variants(dataset, scenario)
    embedder = make_embedder(request.embedder)
    cache = request.cache_dir or default_cache_dir()
    tables = {
        name: CatalogTables.build(
            profiles, lambda texts: cached_embeddings(texts, embedder.name, embedder.embed, cache)
        )
        for name, profiles in variants.items()
    }
    settings = bundle_settings(
        DecisionConfig(stat_epochs=request.stat_epochs),
        seed=request.seed,
        train_fraction=request.train_fraction,
        like_threshold=request.like_threshold,
        capacity=request.capacity,
    )
    metrics, facts = fidelity(dataset, tables, settings, progress)
    facts["analyser"] = request.analyser
    return write_report(metrics, facts, out, command)
