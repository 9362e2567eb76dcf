"""``TasteEnv``: one simulated user per episode, as a Gymnasium environment (``tastesim/TasteSim-v0``).

An action recommends one catalog item (``Discrete(n_items)``) or, with ``slate_size > 1``, a slate
(``MultiDiscrete``). The user decides with the scenario's decision model (no LLM), remembers, drifts and
consumes; the reward follows its decision (:class:`~tastesim.gym.config.Rewards`). An episode ends when the
user leaves (``patience`` steps without a like: terminated) or after ``episode_steps`` (truncated).
The observation is described in :mod:`tastesim.gym.episodes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces

from tastesim.gym.config import EnvConfig
from tastesim.gym.episodes import EpisodeBatch, StepResult
from tastesim.gym.world import EnvWorld, env_world
from tastesim.scenario import Scenario, load_scenario

__all__ = ["ENV_ID", "TasteEnv", "resolve_scenario", "step_info"]

from tastesim import ENV_ID


def resolve_scenario(scenario: Scenario | str | Path | dict | None) -> Scenario:
    """A scenario from a file path, a mapping of fields, a Scenario, or ``None`` (ML-100K, embedded defaults)."""
    if scenario is None:
        return Scenario()
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, dict):
        return Scenario.model_validate(scenario)
    return load_scenario(Path(scenario))


def spaces_for(world: EnvWorld, config: EnvConfig, size: int) -> tuple[spaces.Space, spaces.Box]:
    """The action space (an item, or a slate of items) and the observation space of ``size`` values."""
    action: spaces.Space = (
        spaces.Discrete(world.n_items)
        if config.slate_size == 1
        else spaces.MultiDiscrete(np.full(config.slate_size, world.n_items, dtype=np.int64))
    )
    return action, spaces.Box(-1.0, 1.0, shape=(size,), dtype=np.float32)


def step_info(result: StepResult, batch: EpisodeBatch, row: int) -> dict[str, Any]:
    """The info dict of one row after a step: its decisions, the user, the episode's totals so far."""
    return {
        "clicks": int(result.decisions.click[row].sum()),
        "likes": int(result.decisions.like[row].sum()),
        "dislikes": int(result.decisions.dislike[row].sum()),
        "repeats": int(result.repeats[row].sum()),
        "user": str(batch.world.population.users[batch.agent[row]]),
        "episode_likes": int(batch.totals[row, 2]),
        "episode_clicks": int(batch.totals[row, 1]),
        "episode_shown": int(batch.totals[row, 0]),
    }


class TasteEnv(gymnasium.Env):
    """One simulated user per episode (see module docstring).

    Args:
        scenario: A scenario file, a mapping of scenario fields, a :class:`Scenario`, or ``None`` for the
            ML-100K quick-start defaults. Its dataset, analyser, decision model and drift settings are used.
        config: Environment settings (an :class:`EnvConfig` or a mapping of its fields).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, scenario: Scenario | str | Path | dict | None = None, config: EnvConfig | dict | None = None):
        self.config = config if isinstance(config, EnvConfig) else EnvConfig.model_validate(config or {})
        self.world = env_world(resolve_scenario(scenario), self.config.train_share)
        self.batch = EpisodeBatch(self.world, self.config, 1)
        self.action_space, self.observation_space = spaces_for(self.world, self.config, self.batch.observation_size)
        self._started = False

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Start an episode: episode 0 of ``seed`` when given, else the next episode of the current seed."""
        super().reset(seed=seed)
        rows = np.zeros(1, dtype=np.int64)
        if seed is not None or not self._started:
            start = seed if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
            self.batch.reset(rows, np.array([start]))
            self._started = True
        else:
            self.batch.reset(rows)
        return self.batch.observe()[0], {"user": str(self.world.population.users[self.batch.agent[0]])}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Recommend ``action`` to the user."""
        result = self.batch.step(np.asarray(action, dtype=np.int64).reshape(1, -1))
        info = step_info(result, self.batch, 0)
        return (
            result.observation[0],
            float(result.reward[0]),
            bool(result.terminated[0]),
            bool(result.truncated[0]),
            info,
        )
