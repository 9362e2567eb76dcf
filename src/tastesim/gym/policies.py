"""Policies that act on the vector environment, and the evaluation that compares them on the same episodes.

Baselines, each recommending only items the user has not consumed: ``random`` (uniformly random items, what
an untrained agent does), ``popularity`` (the most rated training items) and ``itemknn`` (item-kNN on the
user's consumed items). A trained Stable-Baselines3 model acts from the observation (:class:`ModelPolicy`).

:func:`evaluate` runs every policy on the same episodes (the same users and patience: episodes are drawn
from seeds, not from actions) and reports the average reward per step, the total reward per episode, the
like and click ratios (per recommended item) and the catalog coverage (distinct items recommended).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from tastesim.gym.vector import TasteVectorEnv
from tastesim.recommenders import SlateRequest
from tastesim.recommenders.baselines import ItemKNNRecommender, PopularityRecommender
from tastesim.rng import RandomTree, Stream

__all__ = [
    "BASELINES",
    "ModelPolicy",
    "Policy",
    "PolicyScore",
    "RecommenderPolicy",
    "UniformPolicy",
    "baseline",
    "evaluate",
]

BASELINES = ("random", "popularity", "itemknn")


class Policy(Protocol):
    """Chooses the actions of every row of a vector environment."""

    name: str

    def act(self, env: TasteVectorEnv, observation: np.ndarray, step: int) -> np.ndarray:
        """Actions ``(num_envs, slate_size)`` for the current observations."""
        ...


@dataclass
class UniformPolicy:
    """Uniformly random items the user has not consumed, distinct within a slate (seeded per step)."""

    seed: int = 0
    name: str = "random"

    def act(self, env: TasteVectorEnv, observation: np.ndarray, step: int) -> np.ndarray:
        """The ``slate_size`` unconsumed items with the smallest random keys."""
        rng = RandomTree(self.seed).generator(Stream.POLICY, step)
        keys = rng.random((env.num_envs, env.world.n_items))
        keys[env.batch.consumed] = 2.0  # after every unconsumed item
        k = env.config.slate_size
        return np.argpartition(keys, k - 1, axis=1)[:, :k] if k > 1 else keys.argmin(axis=1)[:, None]


@dataclass
class RecommenderPolicy:
    """A built-in recommender fitted on the training interactions, asked with each user's consumed items."""

    recommender: Any
    name: str

    def act(self, env: TasteVectorEnv, observation: np.ndarray, step: int) -> np.ndarray:
        """The recommender's slate for each row (its empty slots fall back to item 0, a repeat)."""
        consumed = env.batch.consumed
        request = SlateRequest(
            np.arange(env.num_envs),
            sp.csr_matrix(consumed, dtype=np.float32),
            consumed,
            env.config.slate_size,
            step,
            RandomTree(0).generator(Stream.POLICY, step),
        )
        return np.maximum(self.recommender.recommend(request), 0)


@dataclass
class ModelPolicy:
    """A trained Stable-Baselines3 model acting from the observation: greedily (the most likely action), or
    ``sampled`` from its action distribution (actor-critic models) with draws keyed by (seed, row, step)."""

    model: Any
    name: str
    sampled: bool = False
    seed: int = 0

    def act(self, env: TasteVectorEnv, observation: np.ndarray, step: int) -> np.ndarray:
        """``model.predict`` (greedy), or one draw per row from the policy's categorical distribution."""
        if not self.sampled:
            actions, _ = self.model.predict(observation, deterministic=True)
            return np.asarray(actions).reshape(env.num_envs, -1)
        import torch

        with torch.no_grad():
            tensor, _ = self.model.policy.obs_to_tensor(observation)
            probs = self.model.policy.get_distribution(tensor).distribution.probs.numpy().astype(np.float64)
        draws = RandomTree(self.seed).keyed(Stream.POLICY, step).rows(np.arange(env.num_envs)).uniform(1)
        cumulative = np.cumsum(probs, axis=1)
        picked = (cumulative < draws * cumulative[:, -1:]).sum(axis=1)
        return np.minimum(picked, probs.shape[1] - 1).reshape(env.num_envs, 1)


def baseline(name: str, env: TasteVectorEnv, seed: int = 0) -> Policy:
    """A baseline policy by name (see module docstring), fitted on the environment's training data."""
    if name == "random":
        return UniformPolicy(seed)
    recommender = PopularityRecommender() if name == "popularity" else ItemKNNRecommender()
    recommender.fit(env.world.population.train, RandomTree(seed).generator(Stream.POLICY))
    return RecommenderPolicy(recommender, name)


@dataclass(frozen=True)
class PolicyScore:
    """One policy's figures over a set of episodes."""

    policy: str
    users: str
    episodes: int
    reward_per_step: float
    reward_per_episode: float
    like_ratio: float
    click_ratio: float
    coverage: float
    mean_episode_length: float

    def row(self) -> dict[str, Any]:
        """As a table row."""
        return self.__dict__.copy()


def evaluate(policy: Policy, env: TasteVectorEnv, episodes_per_row: int, seed: int) -> PolicyScore:
    """Run ``episodes_per_row`` episodes in every row (row ``i`` from seed ``seed + i``) and score them."""
    observation, _ = env.reset(seed=seed)
    done_rows = np.zeros(env.num_envs, dtype=np.int64)
    returns = np.zeros(env.num_envs)
    lengths = np.zeros(env.num_envs, dtype=np.int64)
    finished_returns, finished_lengths = [], []
    counts = np.zeros(3)  # recommended, clicks, likes
    recommended = np.zeros(env.world.n_items, dtype=bool)
    step = 0
    while (done_rows < episodes_per_row).any():
        actions = policy.act(env, observation, step)
        counting = done_rows < episodes_per_row
        observation, reward, terminated, truncated, info = env.step(actions)
        step += 1
        returns += reward
        lengths += 1
        counts += [
            actions[counting].size,
            info["clicks"][counting].sum(),
            info["likes"][counting].sum(),
        ]
        recommended[np.asarray(actions)[counting].ravel()] = True
        for row in np.flatnonzero((terminated | truncated) & counting):
            finished_returns.append(returns[row])
            finished_lengths.append(lengths[row])
        done = terminated | truncated
        done_rows += done
        returns[done], lengths[done] = 0.0, 0
    total_steps = max(sum(finished_lengths), 1)
    return PolicyScore(
        policy=policy.name,
        users=env.config.users,
        episodes=len(finished_returns),
        reward_per_step=float(sum(finished_returns) / total_steps),
        reward_per_episode=float(np.mean(finished_returns)),
        like_ratio=float(counts[2] / max(counts[0], 1)),
        click_ratio=float(counts[1] / max(counts[0], 1)),
        coverage=float(recommended.mean()),
        mean_episode_length=float(np.mean(finished_lengths)),
    )
