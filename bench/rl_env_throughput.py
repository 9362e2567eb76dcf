"""Environment steps per second: the batched vector environment against the single environment.

ML-100K on the embedded defaults (MiniLM profiles, the distilled decision model), a random policy, one
action per step. The vector environment steps ``--users`` simulated users at once (one batched decision
per step); the single environment steps one user per call, as a Gymnasium ``Env``. Both are measured in one
run. The published code of the method's paper ran 1.0-2.6 environment steps per second (an LLM call per
decision).

Usage: python bench/rl_env_throughput.py [--users 1024] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

from tastesim.gym.env import TasteEnv
from tastesim.gym.vector import TasteVectorEnv


def vector_rate(users: int, seconds: float) -> tuple[float, int]:
    """Env steps/s of the vector environment with a uniformly random policy."""
    env = TasteVectorEnv(users)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    env.step(rng.integers(0, env.world.n_items, size=users))  # warm-up
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        env.step(rng.integers(0, env.world.n_items, size=users))
        steps += users
    return steps / (time.perf_counter() - started), steps


def single_rate(seconds: float) -> tuple[float, int]:
    """Env steps/s of the single environment with a uniformly random policy."""
    env = TasteEnv()
    env.reset(seed=0)
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - started), steps


def main() -> None:
    """Print both rates and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    started = time.perf_counter()
    TasteEnv()  # build the world once (profiles, MiniLM, decision model): both environments share it
    print(f"world built in {time.perf_counter() - started:.1f} s (cached analysis and models)")
    batched, n_batched = vector_rate(args.users, args.seconds)
    single, n_single = single_rate(args.seconds)
    print(f"vector env, {args.users} users at once: {batched:10,.0f} env steps/s ({n_batched:,} steps)")
    print(f"single env, one user:            {single:10,.0f} env steps/s ({n_single:,} steps)")
    print(f"batched / single: {batched / single:.1f}x; against the paper code's 1.0-2.6 steps/s: {batched / 2.6:,.0f}x")


if __name__ == "__main__":
    main()
