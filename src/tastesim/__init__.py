"""tastesim: simulated populations of recommender-system users.

Importing tastesim registers its Gymnasium environment (when gymnasium is installed, the ``rl`` extra):
``gymnasium.make("tastesim/TasteSim-v0")`` gives one simulated ML-100K user per episode on the embedded
defaults, and ``gymnasium.make_vec("tastesim/TasteSim-v0", num_envs=N)`` the batched vector environment.
"""

from __future__ import annotations

import importlib.util

__all__ = ["ENV_ID"]

ENV_ID = "tastesim/TasteSim-v0"

if importlib.util.find_spec("gymnasium") is not None:
    import gymnasium

    if ENV_ID not in gymnasium.registry:
        gymnasium.register(
            id=ENV_ID,
            entry_point="tastesim.gym.env:TasteEnv",
            vector_entry_point="tastesim.gym.vector:TasteVectorEnv",
            disable_env_checker=True,  # tests run gymnasium's and Stable-Baselines3's checkers in full
        )
