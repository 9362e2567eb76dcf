"""The vector environment as a Stable-Baselines3 ``VecEnv`` (same rows, same seeds, same autoreset)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from tastesim.gym.vector import TasteVectorEnv

__all__ = ["TasteSB3VecEnv"]


class TasteSB3VecEnv(VecEnv):
    """Stable-Baselines3's view of a :class:`TasteVectorEnv`: one batched step per ``step_wait``."""

    render_mode = None

    def __init__(self, env: TasteVectorEnv) -> None:
        self.env = env
        self._actions: np.ndarray | None = None
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    def reset(self) -> np.ndarray:
        """Start every row (with the seeds set by ``seed()``, as row ``i`` <- ``seed + i``)."""
        seeds = self._seeds
        fresh = seeds[0] is not None
        observation, _ = self.env.reset(seed=[int(s) for s in seeds] if fresh else None)
        self._reset_seeds()
        return observation

    def step_async(self, actions: np.ndarray) -> None:
        """Keep the actions for :meth:`step_wait`."""
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """Step every row; a finished row's last observation is its info's ``terminal_observation``."""
        assert self._actions is not None, "step_async first"
        observation, reward, terminated, truncated, info = self.env.step(self._actions)
        done = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for row in np.flatnonzero(done):
            infos[row] = {
                **info["final_info"][row],
                "terminal_observation": info["final_obs"][row],
                "TimeLimit.truncated": bool(truncated[row] and not terminated[row]),
            }
        return observation, reward, done, infos

    def close(self) -> None:
        """Nothing to release."""

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """An attribute of the shared environment, once per requested row."""
        return [getattr(self.env, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Rows share one environment: setting per row is not supported."""
        raise AttributeError(f"cannot set {attr_name!r} on rows of a batched environment")

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **kwargs: Any) -> list:
        """Call a method of the shared environment once per requested row."""
        return [getattr(self.env, method_name)(*method_args, **kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """Rows are never wrapped."""
        return [False] * len(self._get_indices(indices))

    def _get_indices(self, indices: VecEnvIndices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        return [indices] if isinstance(indices, int) else list(indices)
