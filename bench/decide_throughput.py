"""Decision throughput of the distilled scorer, batched, against a per-decision published-style loop.

Builds the quick start's world on ML-100K (cached profiles and decision models; the first call trains
them), resamples 10,000 agents, shows each a random slate of 10 and times ``HeadDecider.decide`` for the
whole batch (features + one forward pass + sampling). In the same run, a per-decision implementation in
the style of the published code (pandas filtering of the user's history for every decision, keyword set
matching, embedding cosines, one statistical dot product) decides a sample, and the ratio is printed.

Usage: python bench/decide_throughput.py [--agents 10000] [--slate 10] [--repeats 5] [--sample 300]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pandas as pd
import torch

from tastesim.agents.population import build_population, seed_memory
from tastesim.paths import default_cache_dir
from tastesim.rng import RandomTree, Stream
from tastesim.scenario import Scenario
from tastesim.scoring.bundle import agent_context, load_or_train
from tastesim.scoring.deciders import HeadDecider
from tastesim.scoring.factory import scenario_bundle_settings
from tastesim.world.build import build_parts, load_scenario_dataset, profiles_for


def published_style(history: pd.DataFrame, parts, stat, pairs: np.ndarray) -> float:
    """Seconds per decision of a per-pair loop: filter history with pandas, match keywords, cosines, vote."""
    tables, bank = parts.catalog.tables, parts.catalog.bank
    started = time.perf_counter()
    for agent, item in pairs:
        mine = history[history["agent"] == agent]
        same = mine[(mine["mask"] & int(tables.category_mask[item])) != 0]
        scope = same if len(same) else mine
        liked, disliked = scope[scope["liked"]], scope[~scope["liked"]]
        like_kw = {k for r in tables.like[item] if r >= 0 for k in bank.keywords[r] if k >= 0}
        dislike_kw = {k for r in tables.dislike[item] if r >= 0 for k in bank.keywords[r] if k >= 0}
        liked_kw = {k for r in liked["reason"] for k in bank.keywords[r] if k >= 0}
        disliked_kw = {k for r in disliked["reason"] for k in bank.keywords[r] if k >= 0}
        kw = np.sign(len(like_kw & liked_kw) - len(dislike_kw & disliked_kw))
        cand = bank.vectors[tables.like[item][tables.like[item] >= 0]]
        pos = float((cand @ bank.vectors[liked["reason"].to_numpy()].T).max()) if len(liked) else 0.0
        cand = bank.vectors[tables.dislike[item][tables.dislike[item] >= 0]]
        neg = float((cand @ bank.vectors[disliked["reason"].to_numpy()].T).max()) if len(disliked) else 0.0
        logit = float(stat.user_like[agent] @ stat.item[item] + stat.like_bias[item])
        _ = (kw + np.sign(pos - neg) + np.sign(logit)) > 0
    return (time.perf_counter() - started) / len(pairs)


def main() -> None:
    """Print decisions/s of both implementations and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--slate", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sample", type=int, default=300)
    args = parser.parse_args()
    scenario = Scenario(seed=42, population={"users": args.agents})
    dataset = load_scenario_dataset(scenario)
    parts = build_parts(scenario, dataset, profiles_for(dataset, scenario))
    pop = scenario.population
    settings = scenario_bundle_settings(scenario)
    tables, bank = parts.catalog.tables, parts.catalog.bank
    bundle = load_or_train(dataset, tables, bank, settings, cache_dir=scenario.cache_dir or default_cache_dir())
    context = agent_context(dataset, parts.population, tables, bank, bundle)
    decider = HeadDecider(bundle.distilled, context)
    tree = RandomTree(0)
    agents = np.arange(len(parts.population.users))
    slates = np.random.default_rng(tree.seed).integers(0, len(parts.catalog.item_ids), size=(agents.size, args.slate))
    decider.decide(parts.memory, agents, slates, tree.keyed(Stream.DECIDE, 0).rows(agents))  # warm-up
    times = []
    for step in range(args.repeats):
        started = time.perf_counter()
        decider.decide(parts.memory, agents, slates, tree.keyed(Stream.DECIDE, step + 1).rows(agents))
        times.append(time.perf_counter() - started)
    batched = agents.size * args.slate / float(np.median(times))

    population, train_rows = build_population(dataset, None, pop.train_fraction, tree.generator(Stream.POPULATION))
    memory, _ = seed_memory(population, train_rows, tables, scenario.memory.capacity, pop.like_threshold)
    rows = np.argwhere(memory.reason >= 0)
    history = pd.DataFrame(
        {
            "agent": rows[:, 0],
            "reason": memory.reason[rows[:, 0], rows[:, 1]],
            "liked": memory.polarity[rows[:, 0], rows[:, 1]] > 0,
            "mask": memory.category_mask[rows[:, 0], rows[:, 1]],
        }
    )
    stat = agent_context(dataset, population, tables, bank, bundle).stat
    gen = np.random.default_rng(tree.seed + 1)
    pairs = np.stack(
        [gen.integers(0, len(population.users), args.sample), gen.integers(0, len(tables.primary), args.sample)], 1
    )
    per_decision = 1.0 / published_style(history, parts, stat, pairs)
    print(
        f"distilled batched: {agents.size} agents x slate {args.slate}: median {np.median(times) * 1e3:.0f} ms "
        f"per step = {batched:,.0f} decisions/s (torch threads {torch.get_num_threads()}, cores {os.cpu_count()})"
    )
    print(f"published-style per-decision loop ({args.sample} decisions): {per_decision:,.0f} decisions/s")
    print(f"ratio batched / per-decision: {batched / per_decision:,.0f}x")


if __name__ == "__main__":
    main()
