"""Many episodes stepped at once: the batched core of the single and the vector environments.

Row ``i`` holds one episode: one simulated user (a copy of a real user's seeded working memory, interest
state and consumed items), the step count and the user's patience. A step decides every row's slate in one
call of the decision model, then the users remember, drift and consume exactly as in a simulation run.

Every random draw is keyed by (episode seed, episode number, step), never by row: an episode is the same
in a single environment and in any row of a vector environment. Episode ``e`` of seed ``s`` draws its user
(uniformly from the configured user set) and its patience from those keys too.

Observation (float32, in [-1, 1]), in this order:

* the user's interest distribution over the catalog's categories (C values, summing to 1 or 0);
* the category shares of the last ``HISTORY`` items shown (C values);
* the interest centroid projected on the item vectors' ``AXES`` principal directions (16 values);
* memory fill, like rate and click rate so far in the episode, elapsed share of the episode, patience left
  (5 values);
* with ``observe_consumed``, the consumed-item bitmap (I values): the user's whole history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tastesim.agents.drift import InterestState, click_offset, update_state
from tastesim.agents.remember import remember_decisions
from tastesim.catalog import Decisions
from tastesim.gym.config import EnvConfig
from tastesim.gym.world import AXES, EnvWorld
from tastesim.memory.working import WorkingMemory
from tastesim.rng import RandomTree, Stream

__all__ = ["HISTORY", "EpisodeBatch", "StepResult"]

HISTORY = 5  # items whose categories the observation shows
_SCALARS = 5
_TREE = RandomTree(0)  # the episode keys (seed, number, step) carry all the randomness


@dataclass(frozen=True)
class StepResult:
    """What one batched step returns (arrays over rows)."""

    observation: np.ndarray  # (n, D)
    reward: np.ndarray  # (n,)
    terminated: np.ndarray  # (n,) the user left (patience ran out)
    truncated: np.ndarray  # (n,) the episode reached ``episode_steps``
    decisions: Decisions  # (n, k) per shown slot
    repeats: np.ndarray  # (n, k) actions naming an item the user had already consumed


class EpisodeBatch:
    """``n`` episodes of ``world`` under ``config`` (see module docstring)."""

    def __init__(self, world: EnvWorld, config: EnvConfig, n: int) -> None:
        self.world, self.config, self.n = world, config, n
        self.pool = world.users(config.users)
        if self.pool.size == 0:
            raise ValueError(f"no {config.users} users to draw episodes from")
        capacity, n_items = world.memory.capacity, world.n_items
        self.memory = WorkingMemory(n, capacity)
        template = world.interest.arrays().values()
        self.interest = InterestState(*(np.zeros((n, *a.shape[1:]), a.dtype) for a in template))
        self.consumed = np.zeros((n, n_items), dtype=bool)
        self.agent = np.zeros(n, dtype=np.int64)
        self.seed = np.zeros(n, dtype=np.int64)
        self.episode = np.full(n, -1, dtype=np.int64)
        self.t = np.zeros(n, dtype=np.int64)
        self.streak = np.zeros(n, dtype=np.int64)
        self.patience = np.ones(n, dtype=np.int64)
        self.recent = np.full((n, HISTORY), -1, dtype=np.int64)
        self.totals = np.zeros((n, 3), dtype=np.int64)  # shown, clicks, likes in the episode
        self._draws = {s: _TREE.keyed(s) for s in (Stream.ENVIRONMENT, Stream.DECIDE, Stream.EXPLORE)}
        self.rows = np.arange(n)
        # Memory steps: one clock for the batch. Within a row only the order of its own memories' steps
        # matters (eviction, recency), and the clock orders them as a per-episode count would.
        self.clock = 0

    @property
    def observation_size(self) -> int:
        """Length of an observation vector."""
        n_categories = len(self.world.catalog.tables.categories)
        return 2 * n_categories + AXES + _SCALARS + (self.world.n_items if self.config.observe_consumed else 0)

    def reset(self, rows: np.ndarray, seeds: np.ndarray | None = None) -> None:
        """Start the next episode of each of ``rows`` (episode 0 of ``seeds`` when given)."""
        if seeds is not None:
            self.seed[rows], self.episode[rows] = seeds, 0
        else:
            self.episode[rows] += 1
        draws = self._draws[Stream.ENVIRONMENT].rows(self.seed[rows], self.episode[rows]).uniform(2)
        agents = self.pool[np.minimum((draws[:, 0] * self.pool.size).astype(np.int64), self.pool.size - 1)]
        low, high = self.config.patience
        self.patience[rows] = low + np.minimum((draws[:, 1] * (high - low + 1)).astype(np.int64), high - low)
        self.agent[rows] = agents
        self.memory.copy_rows(rows, self.world.memory, agents)
        self.interest.copy_rows(rows, self.world.interest, agents)
        self.consumed[rows] = self.world.population.consumed[agents]
        self.t[rows] = self.streak[rows] = 0
        self.recent[rows] = -1
        self.totals[rows] = 0

    def step(self, slates: np.ndarray) -> StepResult:
        """Show ``slates`` ``(n, k)`` of item indices; every row must be in an episode."""
        world, rows, rewards = self.world, self.rows, self.config.rewards
        slates = np.asarray(slates, dtype=np.int64).reshape(self.n, -1)
        repeats = self.consumed[rows[:, None], slates] | _duplicates(slates)
        shown = np.where(repeats, -1, slates)
        keys = (self.seed, self.episode, self.t)
        offset = None
        if world.drift.enabled:
            explore = self._draws[Stream.EXPLORE].rows(*keys)
            vectors, primary = world.item_vectors, world.catalog.tables.primary
            offset = click_offset(
                self.interest, rows, shown, vectors=vectors, primary=primary, params=world.drift, draws=explore
            )
        decider = world.decider.for_agents(self.agent)
        decisions, _ = decider.decide(self.memory, rows, shown, self._draws[Stream.DECIDE].rows(*keys), offset)
        self.t += 1
        self.clock += 1
        remember_decisions(self.memory, world.catalog.tables, rows, shown, decisions, step=self.clock)
        self.consumed[np.broadcast_to(rows[:, None], shown.shape)[decisions.click], shown[decisions.click]] = True
        if world.drift.enabled:
            update_state(
                self.interest, rows, shown, decisions, vectors=world.item_vectors, primary=world.catalog.tables.primary,
                params=world.drift,
            )  # fmt: skip
        reward = (
            rewards.click * decisions.click
            + rewards.like * decisions.like
            + rewards.dislike * decisions.dislike
            + rewards.skip * ((shown >= 0) & ~decisions.click)
            + rewards.repeat * repeats
        ).sum(axis=1)
        liked = decisions.like.any(axis=1)
        self.streak = np.where(liked, 0, self.streak + 1)
        self.totals += np.stack([(shown >= 0).sum(1), decisions.click.sum(1), decisions.like.sum(1)], axis=1)
        self.recent = np.concatenate([self.recent, slates], axis=1)[:, -HISTORY:]
        terminated = self.streak >= self.patience
        truncated = (self.t >= self.config.episode_steps) & ~terminated
        return StepResult(self.observe(), reward.astype(np.float32), terminated, truncated, decisions, repeats)

    def observe(self) -> np.ndarray:
        """The observation of every row (see module docstring)."""
        world, tables = self.world, self.world.catalog.tables
        n_categories = len(tables.categories)
        recent = np.zeros((self.n, n_categories), dtype=np.float32)
        present = self.recent >= 0
        np.add.at(recent, (np.nonzero(present)[0], tables.primary[self.recent[present]]), 1.0 / HISTORY)
        shown = np.maximum(self.totals[:, 0], 1)
        scalars = np.stack(
            [
                self.memory.count() / self.memory.capacity,
                self.totals[:, 2] / shown,
                self.totals[:, 1] / shown,
                self.t / self.config.episode_steps,
                (self.patience - self.streak) / self.patience,
            ],
            axis=1,
        )
        # einsum sums each row in one fixed order (a BLAS product's rounding can depend on the batch size)
        projected = np.einsum("nd,dk->nk", self.interest.centroid(), world.axes)
        parts = [self.interest.categories, recent, projected, scalars]
        if self.config.observe_consumed:
            parts.append(self.consumed)
        return np.clip(np.concatenate([np.asarray(p, dtype=np.float32) for p in parts], axis=1), -1.0, 1.0)


def _duplicates(slates: np.ndarray) -> np.ndarray:
    """Slots repeating an item shown earlier in the same slate."""
    if slates.shape[1] == 1:
        return np.zeros(slates.shape, dtype=bool)
    same = slates[:, :, None] == slates[:, None, :]
    return np.tril(same, k=-1).any(axis=2)
