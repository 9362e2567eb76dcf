"""``tastesim eval agreement``: rank recommenders by real held-out data and by the simulator, and compare.

Every recommender is fitted once on the training part (inside a fresh :class:`~tastesim.world.model.
TasteModel` on the same population, memories and seed). Its *real* score is read from the first slates it
shows, at the starting state: hit rate and NDCG@k against each user's held-out liked items (rating at or
above the like threshold in the later part of their history). Its *simulated* score is what the
simulated users do with it over ``steps`` steps: likes and clicks per slate. Nothing is written to Chroma
(no journal); the decision model is the scenario's (trained on the training part, cached).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tastesim.paths import atomic_write_text
from tastesim.scenario import AnalyserConfig, DatasetConfig, Scenario, ScenarioError

__all__ = ["AGREEMENT_RECOMMENDERS", "DEFAULT_RECOMMENDERS", "AgreementRequest", "run_agreement", "write_agreement"]

AGREEMENT_RECOMMENDERS = ("random", "popularity", "itemknn", "diverse", "mf", "sasrec")
# The default set: one of each kind of model (``diverse`` re-ranks item-kNN's own candidates; add it with
# ``--recommenders``, knowing that its real NDCG is within a few thousandths of item-kNN's).
DEFAULT_RECOMMENDERS = ("random", "popularity", "itemknn", "mf", "sasrec")
SIMUSER_SPEARMAN = 0.72  # SimUSER's sim-vs-real A/B rank correlation


class AgreementRequest(BaseModel):
    """The ``tastesim eval agreement`` options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str | None = None
    data_dir: Path | None = None
    data_format: Literal["auto", "atomic", "generic", "amazon", "yelp"] = "auto"
    seed: int = Field(0, ge=0)
    steps: int = Field(3, ge=1, le=100)
    slate_size: int = Field(10, ge=1, le=100)
    recommenders: tuple[str, ...] = DEFAULT_RECOMMENDERS
    embedder: Literal["minilm", "hashing"] = "minilm"
    decision: Literal["logical", "vote", "learned", "distilled"] = "distilled"
    stat_epochs: int = Field(20, ge=1, le=500)
    cache_dir: Path | None = None

    @field_validator("recommenders")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(names) - set(AGREEMENT_RECOMMENDERS))
        if unknown:
            raise ValueError(f"unknown recommender(s) {unknown}; choose from {', '.join(AGREEMENT_RECOMMENDERS)}")
        if len(set(names)) < 3:
            raise ValueError("rank agreement needs at least 3 distinct recommenders")
        return names

    def scenario(self) -> Scenario:
        """The scenario whose population, decision model and drift the simulated side uses."""
        try:
            return Scenario(
                name="agreement",
                seed=self.seed,
                steps=self.steps,
                dataset=DatasetConfig(name=self.dataset, path=self.data_dir, format=self.data_format),
                analyser=AnalyserConfig(embedder=self.embedder),
                recommender={"slate_size": self.slate_size},
                decision={"model": self.decision, "stat_epochs": self.stat_epochs},
                cache_dir=self.cache_dir,
            )
        except ValidationError as err:
            raise ScenarioError("; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())) from err


def _held_out_likes(dataset, population, train_fraction: float, like_threshold: float) -> list[np.ndarray]:
    from tastesim.data.split import split_by_time

    inter = dataset.interactions
    held = inter[~split_by_time(inter, train_fraction).to_numpy()]
    held = held[held["rating"].to_numpy() >= like_threshold]
    liked = {u: dataset.item_index(g["item"].tolist()) for u, g in held.groupby("user", sort=False)}
    return [liked.get(u, np.zeros(0, dtype=np.int64)) for u in population.users]


def _sequences(dataset, population, train_fraction: float, like_threshold: float) -> list[tuple[np.ndarray, ...]]:
    from tastesim.data.split import split_by_time

    inter = dataset.interactions
    train = inter[split_by_time(inter, train_fraction).to_numpy()]
    grouped = {
        u: (dataset.item_index(g["item"].tolist()), (g["rating"].to_numpy() >= like_threshold).astype(np.int64))
        for u, g in train.groupby("user", sort=False)
    }
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    return [grouped.get(u, empty) for u in population.users]


def run_agreement(
    request: AgreementRequest, out: Path, command: str, progress: Callable[[str, int, int], None]
) -> tuple[Path, Path]:
    """Rank the recommenders both ways and write ``agreement.json`` and ``agreement.md`` into ``out``."""

    from tastesim.agents.drift import item_vectors
    from tastesim.eval.agreement import hit_and_ndcg, rank_agreement
    from tastesim.memory.working import WorkingMemory
    from tastesim.recommenders import recommender_for
    from tastesim.scenario import RecommenderConfig
    from tastesim.world.build import build_parts, load_scenario_dataset, profiles_for, scenario_decider
    from tastesim.world.model import TasteModel

    scenario = request.scenario()
    pop_cfg = scenario.population
    progress("loading data and profiles", 0, 1)
    dataset = load_scenario_dataset(scenario)
    parts = build_parts(scenario, dataset, profiles_for(dataset, scenario))
    decider = scenario_decider(scenario, parts, progress)
    population = parts.population
    liked = _held_out_likes(dataset, population, pop_cfg.train_fraction, pop_cfg.like_threshold)
    sequences = _sequences(dataset, population, pop_cfg.train_fraction, pop_cfg.like_threshold)
    vectors = item_vectors(parts.catalog.tables, parts.catalog.bank)
    rows: dict[str, dict[str, float]] = {}
    for index, name in enumerate(request.recommenders):
        progress("recommenders: fit, real metric, simulation", index, len(request.recommenders))
        started = time.perf_counter()
        config = RecommenderConfig(name=name, slate_size=request.slate_size)
        recommender = recommender_for(
            config, vectors, parts.catalog.item_ids, [str(u) for u in population.users], sequences=sequences
        )
        memory = WorkingMemory.from_state({k: v.copy() for k, v in parts.memory.state().items()})
        model = TasteModel(
            parts.catalog,
            population,
            memory,
            recommender,
            decider,
            seed=scenario.seed,
            slate_size=request.slate_size,
            drift=scenario.drift,
        )  # fits the recommender on the training part
        agents = np.arange(len(population.users))
        first = model.recommend(agents)  # the first slates, at the starting state (the same draws as step 1)
        hit, ndcg, users = hit_and_ndcg(np.asarray(first), liked)
        likes = clicks = slates = 0
        for _ in range(request.steps):
            model.step()
            shown = model.last_interactions
            likes += int(shown["like"].sum())
            clicks += int(shown["click"].sum())
            slates += int(shown["agent"].nunique())
        rows[name] = {
            "real_hit_rate": hit,
            "real_ndcg": ndcg,
            "sim_likes_per_slate": likes / max(slates, 1),
            "sim_clicks_per_slate": clicks / max(slates, 1),
            "sim_like_rate": likes / max(clicks, 1),
            "users_with_held_out_likes": users,
            "seconds": time.perf_counter() - started,
        }
    progress("recommenders: fit, real metric, simulation", len(request.recommenders), len(request.recommenders))
    pairs = {
        f"{real}~{sim}": rank_agreement(
            {n: r[f"real_{real}"] for n, r in rows.items()}, {n: r[f"sim_{sim}"] for n, r in rows.items()}
        )
        for real in ("ndcg", "hit_rate")
        for sim in ("likes_per_slate", "clicks_per_slate")
    }
    tau, rho = pairs["ndcg~likes_per_slate"]
    payload = {
        "kendall_tau": tau,
        "spearman": rho,
        "real_metric": f"NDCG@{request.slate_size}",
        "simulated_metric": "likes per slate",
        "correlations": {key: {"kendall_tau": t, "spearman": s} for key, (t, s) in pairs.items()},
        "recommenders": rows,
        "facts": {
            "dataset": dataset.name,
            "users": len(population.users),
            "steps": request.steps,
            "slate_size": request.slate_size,
            "seed": request.seed,
            "decision_model": scenario.decision.model,
            "simuser_spearman": SIMUSER_SPEARMAN,
        },
        "command": command,
    }
    return write_agreement(payload, out)


def _cell(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def write_agreement(payload: dict, out: Path) -> tuple[Path, Path]:
    """Write ``agreement.json`` and ``agreement.md`` (the per-recommender table and the correlations)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "agreement.json"
    atomic_write_text(json_path, json.dumps(payload, indent=2, allow_nan=True) + "\n")
    rows = payload["recommenders"]
    by_real = sorted(rows, key=lambda n: -rows[n]["real_ndcg"])
    by_sim = sorted(rows, key=lambda n: -rows[n]["sim_likes_per_slate"])
    facts = payload["facts"]
    lines = [
        f"# Sim-vs-real agreement on {facts['dataset']}",
        "",
        f"`{payload['command']}`",
        "",
        f"{facts['users']} users; each recommender fitted on the training part. Real: its first slates "
        f"(k = {facts['slate_size']}) against each user's held-out liked items. Simulated: the same "
        f"recommender serving the simulated population ({facts['decision_model']} decision model) from the same "
        f"starting state for {facts['steps']} steps.",
        "",
        f"**Kendall tau {_cell(payload['kendall_tau'])}, Spearman {_cell(payload['spearman'])}** "
        f"({payload['real_metric']} vs {payload['simulated_metric']}; SimUSER reports Spearman "
        f"{facts['simuser_spearman']}).",
        "",
        "| recommender | real hit rate | real NDCG | real rank | sim likes/slate | sim clicks/slate | sim like rate "
        "| sim rank |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in by_real:
        r = rows[name]
        lines.append(
            f"| {name} | {_cell(r['real_hit_rate'])} | {_cell(r['real_ndcg'])} | {by_real.index(name) + 1} | "
            f"{_cell(r['sim_likes_per_slate'])} | {_cell(r['sim_clicks_per_slate'])} | {_cell(r['sim_like_rate'])} | "
            f"{by_sim.index(name) + 1} |"
        )
    lines += ["", "| real metric ~ simulated metric | Kendall tau | Spearman |", "|---|---|---|"]
    for key, value in payload["correlations"].items():
        lines.append(
            f"| {key.replace('~', ' ~ ').replace('_', ' ')} | {_cell(value['kendall_tau'])} | "
            f"{_cell(value['spearman'])} |"
        )
    md_path = out / "agreement.md"
    atomic_write_text(md_path, "\n".join(lines) + "\n")
    return json_path, md_path
