"""The method's RL experiment on ML-100K: train DQN, PPO, A2C and TRPO, then compare them with random,
most-popular and item-kNN on seen (training) and unseen (held-out) users, on the same episodes.

Writes OUT/<algo>/ (policy, learning curve, train.json), OUT/eval/rl_eval.{csv,md} and
OUT/learning_curves.png, and prints the table. Each algorithm trains with the same seed, environment and
timesteps (``tastesim rl train`` does the same for one algorithm).

Trained policies recommend only items the user has not consumed, as the baselines do (``--no-mask``: any item,
and a repeat earns the repeat penalty).

Training uses two torch threads (``--threads``; the README's table was measured so): run it alone.

Usage: python bench/rl_table.py [--timesteps 200000] [--algos dqn ppo a2c trpo] [--out runs/rl] [--no-mask]
       [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from tastesim.gym.config import EnvConfig
from tastesim.runs.rl import ALGORITHMS, EvalRequest, TrainRequest, evaluate_policies, train_policy


def plot_curves(folders: dict[str, Path], path: Path) -> None:
    """Mean return of recent training episodes against timesteps, one line per algorithm."""
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for algo, folder in folders.items():
        curve = pd.read_csv(folder / "learning_curve.csv")
        ax.plot(curve["timesteps"], curve["mean_return"], label=algo)
    ax.set_xlabel("timesteps")
    ax.set_ylabel("mean episode return (last 100 episodes)")
    ax.set_title("Learning curves on ML-100K training users")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    """Train, evaluate, plot, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=200_000)
    parser.add_argument("--algos", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS)
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/rl"))
    parser.add_argument("--mask", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threads", type=int, default=2, help="torch threads while training (run it alone)")
    args = parser.parse_args()
    env = EnvConfig()
    folders = {}
    for algo in args.algos:
        folder = args.out / algo
        shutil.rmtree(folder, ignore_errors=True)
        request = TrainRequest(
            algo=algo,
            timesteps=args.timesteps,
            envs=args.envs,
            seed=args.seed,
            env=env,
            mask_consumed=args.mask,
            threads=args.threads,
        )
        summary = train_policy(request, None, folder)
        print(f"{algo}: {summary['wall_seconds']} s, {summary['timesteps_per_second']} timesteps/s", flush=True)
        folders[algo] = folder
    table = evaluate_policies(
        EvalRequest(policies=list(folders.values()), episodes=args.episodes, env=env), None, args.out / "eval"
    )
    plot_curves(folders, args.out / "learning_curves.png")
    print((args.out / "eval" / "rl_eval.md").read_text(encoding="utf-8"))
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
