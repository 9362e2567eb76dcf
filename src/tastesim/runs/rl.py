"""The method's reinforcement-learning experiment: train recommenders with Stable-Baselines3 in the
environment, then compare them with baseline policies on seen and unseen users.

``train`` writes ``policy.zip`` (the SB3 model), ``learning_curve.csv`` (mean return of the last 100
training episodes against timesteps) and ``train.json`` (settings, wall time, environment steps/s).
``evaluate`` writes ``rl_eval.csv`` and ``rl_eval.md``: every trained policy and the random, most-popular
and item-kNN policies on the same episodes of training users (seen) and held-out users (unseen). Trained
policies act greedily; actor-critic ones (PPO, A2C, TRPO) also act as sampled from their distribution,
the way they were trained ("(sampled)" rows); DQN's policy is its greedy one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tastesim.gym.config import EnvConfig
from tastesim.gym.env import resolve_scenario
from tastesim.gym.policies import BASELINES, ModelPolicy, PolicyScore, baseline, evaluate
from tastesim.gym.vector import TasteVectorEnv, sb3_vec_env
from tastesim.paths import atomic_write, atomic_write_text
from tastesim.runs.outcome import Progress, RunError, quiet
from tastesim.scenario import Scenario
from tastesim.scoring.statistical import torch_threads

__all__ = ["ALGORITHMS", "EvalRequest", "TrainRequest", "evaluate_policies", "load_policy", "train_policy"]

ALGORITHMS = ("dqn", "ppo", "a2c", "trpo")
Algorithm = Literal["dqn", "ppo", "a2c", "trpo"]
_CURVE_EVERY = 2_000  # timesteps between learning-curve points

# Settings per algorithm for this environment (Stable-Baselines3 defaults otherwise): a 256x256 MLP, a
# discount of 0.9 (a recommender values the next few interactions; episodes last 20 steps at most), and
# enough updates per collected step that a 1,682-item action space is learned within ~10^5 steps. DQN
# discounts by 0.5: its target takes a max over 1,682 bootstrapped values, whose noise (overestimation,
# van Hasselt 2010) drowned the reward at 0.9 (60,000 steps: 0.334 reward per step on held-out users, level
# with random; 0.467 at 0.5, 0.475 at 0).
_NET = {"net_arch": [256, 256]}
_GAMMA = 0.9
_SETTINGS: dict[str, dict[str, Any]] = {
    "dqn": {
        "gamma": 0.5,
        "learning_rate": 5e-4,
        "buffer_size": 100_000,
        "learning_starts": 2_000,
        "batch_size": 128,
        "train_freq": 1,
        "gradient_steps": 1,
        "target_update_interval": 1_000,
        "exploration_fraction": 0.3,
        "exploration_final_eps": 0.05,
    },
    "ppo": {"n_steps": 256, "batch_size": 512, "n_epochs": 4, "learning_rate": 3e-4, "ent_coef": 0.01},
    "a2c": {"n_steps": 16, "learning_rate": 7e-4, "ent_coef": 0.01},
    "trpo": {"n_steps": 512, "batch_size": 512, "learning_rate": 1e-3},
}


class TrainRequest(BaseModel):
    """What ``tastesim rl train`` does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    algo: Algorithm
    timesteps: int = Field(200_000, ge=100)
    envs: int = Field(8, ge=1, le=4096, description="users stepped at once")
    seed: int = Field(0, ge=0)
    env: EnvConfig = EnvConfig()
    mask_consumed: bool = Field(
        True, description="recommend only items the user has not consumed, as the baselines do (tastesim.gym.masked)"
    )
    threads: int = Field(
        1,
        ge=1,
        le=256,
        description="torch threads while training (on 2 idle cores a second thread did not shorten DQN's "
        "training; on a busy machine it only spin-waits)",
    )


class EvalRequest(BaseModel):
    """What ``tastesim rl eval`` does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policies: list[Path] = Field(default_factory=list, description="folders written by rl train")
    baselines: list[Literal["random", "popularity", "itemknn"]] = Field(default_factory=lambda: list(BASELINES))
    episodes: int = Field(512, ge=1, description="episodes per policy and user set")
    envs: int = Field(128, ge=1, le=4096)
    seed: int = Field(10_000, ge=0, description="seed of the evaluation episodes (not used in training)")
    env: EnvConfig = EnvConfig()


def _settings(algo: str) -> dict[str, Any]:
    return {"gamma": _GAMMA} | _SETTINGS[algo]


def _algorithm(name: str) -> Any:
    if name == "trpo":
        from sb3_contrib import TRPO

        return TRPO
    import stable_baselines3

    return getattr(stable_baselines3, name.upper())


def _policy_class(algo: str, masked: bool) -> Any:
    if not masked:
        return "MlpPolicy"
    from tastesim.gym.masked import MaskedActorCriticPolicy, MaskedQPolicy

    return MaskedQPolicy if algo == "dqn" else MaskedActorCriticPolicy


def _curve_callback(total: int, progress: Progress, label: str) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class Curve(BaseCallback):
        """Progress, and the mean return of recent episodes every ``_CURVE_EVERY`` timesteps."""

        def __init__(self) -> None:
            super().__init__()
            self.points: list[tuple[int, float, int]] = []
            self._next = _CURVE_EVERY

        def _on_step(self) -> bool:
            if self.num_timesteps >= self._next:
                self._next += _CURVE_EVERY
                episodes = self.model.ep_info_buffer
                if episodes:
                    mean = float(np.mean([e["r"] for e in episodes]))
                    self.points.append((self.num_timesteps, mean, len(episodes)))
                progress(label, min(self.num_timesteps, total), total)
            return True

    return Curve()


def train_policy(
    request: TrainRequest, scenario: Scenario | Path | None, out: Path, progress: Progress = quiet
) -> dict[str, Any]:
    """Train ``request.algo`` on the training users of ``scenario`` and save it into ``out``."""
    from stable_baselines3.common.vec_env import VecMonitor

    if (out / "policy.zip").exists():
        raise RunError(f"{out} already holds a trained policy; choose another --out")
    progress("building the environment", 0, 1)
    resolved = resolve_scenario(scenario)
    env = VecMonitor(sb3_vec_env(TasteVectorEnv(request.envs, resolved, request.env)))
    env.seed(request.seed)
    cls = _algorithm(request.algo)
    policy = _policy_class(request.algo, request.mask_consumed)
    try:
        model = cls(policy, env, seed=request.seed, device="cpu", policy_kwargs=_NET, **_settings(request.algo))
    except ValueError as err:  # a masked policy on slates or without the consumed items in the observation
        raise RunError(str(err)) from err
    callback = _curve_callback(request.timesteps, progress, f"training {request.algo}")
    started = time.perf_counter()
    with torch_threads(request.threads):
        model.learn(total_timesteps=request.timesteps, callback=callback)
    wall = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "policy.zip")
    curve = pd.DataFrame(callback.points, columns=["timesteps", "mean_return", "episodes"])
    atomic_write(out / "learning_curve.csv", lambda tmp: curve.to_csv(tmp, index=False))
    summary = {
        "algo": request.algo,
        "timesteps": request.timesteps,
        "envs": request.envs,
        "seed": request.seed,
        "mask_consumed": request.mask_consumed,
        "threads": request.threads,
        "env": request.env.model_dump(mode="json"),
        "scenario": resolved.model_dump(mode="json"),
        "wall_seconds": round(wall, 1),
        "timesteps_per_second": round(request.timesteps / wall, 1),
        "settings": _settings(request.algo),
    }
    atomic_write_text(out / "train.json", json.dumps(summary, indent=2) + "\n")
    return summary


def load_policy(folder: Path) -> tuple[ModelPolicy, dict[str, Any]]:
    """A policy saved by :func:`train_policy`, with its training summary."""
    if not (folder / "train.json").is_file() or not (folder / "policy.zip").is_file():
        raise RunError(f"{folder} holds no trained policy (train.json and policy.zip): run `tastesim rl train`")
    summary = json.loads((folder / "train.json").read_text(encoding="utf-8"))
    model = _algorithm(summary["algo"]).load(folder / "policy.zip", device="cpu")
    return ModelPolicy(model, summary["algo"]), summary


def evaluate_policies(
    request: EvalRequest, scenario: Scenario | Path | None, out: Path, progress: Progress = quiet
) -> pd.DataFrame:
    """Score every trained policy and baseline on seen and unseen users; write the tables into ``out``."""
    trained = [load_policy(folder) for folder in request.policies]
    if trained:
        scenario = Scenario.model_validate(trained[0][1]["scenario"])
    resolved = resolve_scenario(scenario)
    rows: list[PolicyScore] = []
    per_row = -(-request.episodes // request.envs)
    sets = ("train", "test")
    n_sampled = sum(summary["algo"] != "dqn" for _, summary in trained)
    total = len(sets) * (len(trained) + n_sampled + len(request.baselines))
    for users in sets:
        env = TasteVectorEnv(request.envs, resolved, request.env.model_copy(update={"users": users}))
        sampled = [replace(p, name=f"{p.name} (sampled)", sampled=True, seed=request.seed) for p, _ in trained]
        greedy = [p for p, _ in trained]
        on_policy = [s for s, (_, summary) in zip(sampled, trained, strict=True) if summary["algo"] != "dqn"]
        policies: Sequence[Any] = greedy + on_policy + [baseline(name, env) for name in request.baselines]
        for policy in policies:
            progress("evaluating", len(rows), total)
            rows.append(evaluate(policy, env, per_row, request.seed))
    progress("evaluating", total, total)
    table = pd.DataFrame([r.row() for r in rows])
    table["users"] = table["users"].map({"train": "seen", "test": "unseen"})
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "rl_eval.csv", lambda tmp: table.to_csv(tmp, index=False))
    atomic_write_text(out / "rl_eval.md", _markdown(table, request, [s for _, s in trained]))
    return table


def _markdown(table: pd.DataFrame, request: EvalRequest, trained: list[dict[str, Any]]) -> str:
    columns = ["policy", "users", "reward_per_step", "reward_per_episode", "like_ratio", "click_ratio", "coverage"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in table[columns].itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")
    notes = [
        f"{request.episodes} episodes per policy and user set (seed {request.seed}), "
        f"episodes of up to {request.env.episode_steps} steps.",
        *(f"{s['algo']}: {s['timesteps']} timesteps, {s['envs']} users at once, seed {s['seed']}, "
          f"{s['wall_seconds']} s ({s['timesteps_per_second']} steps/s)" for s in trained),
    ]  # fmt: skip
    return "\n".join(["# RL policies in the tastesim environment", "", *lines, "", *notes, ""])
