"""Scenario files: frozen, validated configuration (pydantic, unknown keys are errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tastesim.data import BUILTIN_DATASETS

__all__ = ["Scenario", "ScenarioError", "load_scenario"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Section):
    """Where the data comes from: a built-in ``name`` or a folder ``path``."""

    name: str | None = Field(None, description="built-in dataset name, or the atomic-file stem inside path")
    path: Path | None = Field(None, description="folder with RecBole atomic files or generic CSVs")
    format: Literal["auto", "atomic", "generic"] = "auto"

    @model_validator(mode="after")
    def _known(self) -> DatasetConfig:
        if self.path is None and self.name not in BUILTIN_DATASETS:
            raise ValueError(f"give a path, or a built-in name ({', '.join(BUILTIN_DATASETS)}); got name={self.name!r}")
        if self.path is not None and not self.path.is_dir():
            raise ValueError(f"dataset path {str(self.path)!r} is not a folder")
        return self


class PopulationConfig(_Section):
    """Which users become agents and how their histories are split."""

    users: int | None = Field(None, gt=0, description="agents to build; all users when empty, resampled when above")
    train_fraction: float = Field(0.8, gt=0, lt=1, description="earlier share of each user's ratings seeding memory")
    like_threshold: float = Field(3.0, description="rating at or above which an item counts as liked")
    activity: float = Field(1.0, gt=0, le=1, description="probability that an agent acts in a step")


class MemoryConfig(_Section):
    """Agent memory: working set in RAM, long-term store in Chroma."""

    capacity: int = Field(16, ge=1, le=512, description="distinct reasons each agent keeps in working memory")
    server: str | None = Field(None, pattern=r"^https?://", description="Chroma server URL; embedded store when empty")
    checkpoint_every: int = Field(5, ge=1, description="steps between checkpoints (each flushes memory writes)")


class AnalyserConfig(_Section):
    """How item profiles are obtained."""

    kind: Literal["keyphrase"] = "keyphrase"
    profiles: Path | None = Field(None, description="JSONL of item profiles to use instead of analysing")
    embedder: Literal["minilm", "hashing"] = "minilm"

    @model_validator(mode="after")
    def _exists(self) -> AnalyserConfig:
        if self.profiles is not None and not self.profiles.is_file():
            raise ValueError(f"profiles file {str(self.profiles)!r} not found")
        return self


class RecommenderConfig(_Section):
    """The recommender under test."""

    name: Literal["random", "popularity", "itemknn"] = "popularity"
    slate_size: int = Field(10, ge=1, le=200)
    allow_repeats: bool = False
    neighbours: int = Field(50, ge=1, description="item-kNN neighbours kept per item")


class DecisionConfig(_Section):
    """Parameters of the logical rule (see tastesim.scoring.logical)."""

    click_threshold: float = Field(0.8, ge=-1, le=1, description="appeal at which a click is a coin flip")
    click_temperature: float = Field(0.08, gt=0, description="softness of the click threshold")
    tie_like: float | None = Field(
        None, ge=0, le=1, description="probability of like on a tied vote; empty = the training like rate"
    )


class Scenario(_Section):
    """A whole simulation run."""

    name: str = Field("run", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    seed: int = Field(0, ge=0)
    steps: int = Field(20, gt=0, le=100_000)
    dataset: DatasetConfig = DatasetConfig(name="ml-100k")
    population: PopulationConfig = PopulationConfig()
    memory: MemoryConfig = MemoryConfig()
    analyser: AnalyserConfig = AnalyserConfig()
    recommender: RecommenderConfig = RecommenderConfig()
    decision: DecisionConfig = DecisionConfig()
    cache_dir: Path | None = Field(None, description="profile/embedding cache; $TASTESIM_CACHE or ~/.cache/tastesim")

    def to_yaml(self) -> str:
        """The resolved scenario as YAML (paths absolute)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


class ScenarioError(ValueError):
    """A scenario file is unreadable or invalid; ``str()`` is a message for the user."""


def _absolutise(data: dict, base: Path) -> dict:
    """Resolve relative paths in the raw mapping against the scenario file's folder."""
    for section, key in (("dataset", "path"), ("analyser", "profiles")):
        part = data.get(section)
        if isinstance(part, dict) and isinstance(part.get(key), str):
            part[key] = str((base / part[key]).resolve())
    if isinstance(data.get("cache_dir"), str):
        data["cache_dir"] = str((base / data["cache_dir"]).resolve())
    return data


def load_scenario(path: Path, overrides: dict | None = None) -> Scenario:
    """Read and validate a scenario file; relative paths are taken from the file's folder.

    Raises:
        ScenarioError: With one line per problem, each naming the field.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ScenarioError(f"{path}: file not found") from err
    except yaml.YAMLError as err:
        raise ScenarioError(f"{path}: not valid YAML: {err}") from err
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping of fields, got {type(raw).__name__}")
    raw = _absolutise(raw, path.parent)
    for key, value in (overrides or {}).items():
        raw[key] = value
    try:
        return Scenario.model_validate(raw)
    except ValidationError as err:
        lines = []
        for problem in err.errors():
            field = ".".join(str(p) for p in problem["loc"]) or "(top level)"
            message = problem["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: {field}: {message}")
        raise ScenarioError("\n".join(lines)) from err
