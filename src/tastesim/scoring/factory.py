"""Build the decision model a scenario asks for (training and caching the learned ones on first use)."""

from __future__ import annotations

from pathlib import Path

from tastesim.agents.population import Population
from tastesim.catalog.tables import CatalogTables, ReasonBank
from tastesim.data.dataset import Dataset
from tastesim.scenario import DecisionConfig, Scenario
from tastesim.scoring.bundle import BundleSettings, Progress, agent_context, load_or_train
from tastesim.scoring.decider import Decider
from tastesim.scoring.deciders import HeadDecider, LogicalDecider, VoteDecider
from tastesim.scoring.logical import LogicalRule
from tastesim.scoring.statistical import StatSettings

__all__ = ["bundle_settings", "make_decider", "scenario_bundle_settings"]


def bundle_settings(
    cfg: DecisionConfig, *, seed: int, train_fraction: float, like_threshold: float, capacity: int
) -> BundleSettings:
    """The training settings a decision config implies."""
    return BundleSettings(
        seed=seed,
        train_fraction=train_fraction,
        like_threshold=like_threshold,
        capacity=capacity,
        negatives=cfg.negatives,
        hidden=cfg.hidden,
        teacher_weight=cfg.teacher_weight,
        stat=StatSettings(dim=cfg.stat_dim, epochs=cfg.stat_epochs),
    )


def scenario_bundle_settings(scenario: Scenario) -> BundleSettings:
    """The training settings of a scenario's decision model (its seed, split, like threshold and capacity)."""
    pop = scenario.population
    return bundle_settings(
        scenario.decision,
        seed=scenario.seed,
        train_fraction=pop.train_fraction,
        like_threshold=pop.like_threshold,
        capacity=scenario.memory.capacity,
    )


def make_decider(
    cfg: DecisionConfig,
    settings: BundleSettings,
    *,
    dataset: Dataset,
    population: Population,
    tables: CatalogTables,
    bank: ReasonBank,
    cache_dir: Path,
    progress: Progress | None = None,
) -> Decider:
    """The decider named by ``cfg.model``; a tie defaults to the training data's like rate."""
    train = population.train
    base_rate = float((train.data >= settings.like_threshold).mean()) if train.nnz else 0.5
    tie = cfg.tie_like if cfg.tie_like is not None else base_rate
    rule = LogicalRule(cfg.click_threshold, cfg.click_temperature, tie)
    if cfg.model == "logical":
        return LogicalDecider(rule, tables, bank)
    bundle = load_or_train(dataset, tables, bank, settings, cache_dir=cache_dir, progress=progress)
    context = agent_context(dataset, population, tables, bank, bundle)
    if cfg.model == "vote":
        return VoteDecider(rule, context, bundle.stat_threshold)
    return HeadDecider(bundle.learned if cfg.model == "learned" else bundle.distilled, context)
