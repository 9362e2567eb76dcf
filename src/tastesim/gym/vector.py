"""The fast path: many simulated users stepped at once through the batched decision model.

:class:`TasteVectorEnv` is a Gymnasium vector environment (``gymnasium.make_vec("tastesim/TasteSim-v0",
num_envs=N)``) and :func:`sb3_vec_env` wraps it as a Stable-Baselines3 ``VecEnv``. Both autoreset in the same
step: a finished row starts its next episode at once, and its last observation is in the step's info
(``final_obs`` here, ``terminal_observation`` for Stable-Baselines3). Row ``i`` of ``reset(seed=s)`` plays
exactly the episodes of a single :class:`~tastesim.gym.env.TasteEnv` reset with seed ``s + i``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from tastesim.gym.config import EnvConfig
from tastesim.gym.env import resolve_scenario, spaces_for, step_info
from tastesim.gym.episodes import EpisodeBatch
from tastesim.gym.world import env_world
from tastesim.scenario import Scenario

__all__ = ["TasteVectorEnv", "sb3_vec_env"]


class TasteVectorEnv(VectorEnv):
    """``num_envs`` simulated users at once (see module docstring).

    Args:
        num_envs: Rows (episodes in flight).
        scenario: As for :class:`~tastesim.gym.env.TasteEnv`.
        config: As for :class:`~tastesim.gym.env.TasteEnv`.
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        scenario: Scenario | str | Path | dict | None = None,
        config: EnvConfig | dict | None = None,
        **_spec_kwargs: Any,
    ) -> None:
        self.config = config if isinstance(config, EnvConfig) else EnvConfig.model_validate(config or {})
        self.world = env_world(resolve_scenario(scenario), self.config.train_share)
        self.num_envs = num_envs
        self.batch = EpisodeBatch(self.world, self.config, num_envs)
        self.single_action_space, self.single_observation_space = spaces_for(
            self.world, self.config, self.batch.observation_size
        )
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self._started = False

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Start every row: row ``i`` at episode 0 of ``seed + i`` (a list gives each row's seed); without a
        seed, the next episode of each row (random seeds the first time)."""
        rows = np.arange(self.num_envs)
        if seed is None and self._started:
            self.batch.reset(rows)
        else:
            if seed is None:
                seeds = np.random.default_rng().integers(0, 2**31 - 1, size=self.num_envs)
            elif isinstance(seed, int):
                seeds = seed + rows
            else:
                seeds = np.asarray(seed, dtype=np.int64)
            self.batch.reset(rows, seeds)
            self._started = True
        self.returns[:] = 0.0
        return self.batch.observe(), {"user": self.world.population.users[self.batch.agent]}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """One action per row; finished rows start their next episode in the same step."""
        result = self.batch.step(np.asarray(actions, dtype=np.int64).reshape(self.num_envs, -1))
        self.returns += result.reward
        done = result.terminated | result.truncated
        decisions = result.decisions
        info: dict[str, Any] = {
            "clicks": decisions.click.sum(1),
            "likes": decisions.like.sum(1),
            "dislikes": decisions.dislike.sum(1),
            "repeats": result.repeats.sum(1),
        }
        observation = result.observation
        if done.any():
            finished = np.flatnonzero(done)
            final_obs = np.empty(self.num_envs, dtype=object)
            final_info = np.empty(self.num_envs, dtype=object)
            for row in finished:
                final_obs[row] = observation[row].copy()
                final_info[row] = {**step_info(result, self.batch, row), "episode_return": float(self.returns[row])}
            info |= {"final_obs": final_obs, "_final_obs": done, "final_info": final_info, "_final_info": done}
            self.batch.reset(finished)
            self.returns[finished] = 0.0
            observation = observation.copy()
            observation[finished] = self.batch.observe()[finished]
        return observation, result.reward, result.terminated, result.truncated, info


def sb3_vec_env(env: TasteVectorEnv) -> Any:
    """``env`` as a Stable-Baselines3 ``VecEnv`` (imported on first use: the ``rl`` extra)."""
    from tastesim.gym.sb3 import TasteSB3VecEnv

    return TasteSB3VecEnv(env)
