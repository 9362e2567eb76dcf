"""Stable-Baselines3 policies that recommend only items the user has not consumed.

The baselines (most popular, item-kNN) never recommend an item the user already consumed; a learned
policy that may do so earns the ``repeat`` penalty whenever its favourite items are ones this user has
seen, which on users it never trained on is most of what it does. These policies mask those actions
("invalid action masking", Huang & Ontañón 2022): the mask is read from the observation's consumed-item
bitmap (its last ``n_items`` values, present with ``observe_consumed``), so it is a function of the
observation and the policy stays a plain SB3 policy that saves and loads as usual.

* :class:`MaskedQPolicy` (DQN): the greedy action is the best-valued unconsumed item. Exploration draws
  stay uniform over the catalog, and the target keeps SB3's max over every item.
* :class:`MaskedActorCriticPolicy` (PPO, A2C, TRPO): consumed items get a logit of ``-1e8`` (probability 0)
  in the action distribution used to act, to compute log-probabilities and entropies, so training and
  acting see the same distribution.

Both need a single-item action (``slate_size: 1``).
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.dqn.policies import DQNPolicy

__all__ = ["MASKED_LOGIT", "MaskedActorCriticPolicy", "MaskedQPolicy", "consumed_mask"]

MASKED_LOGIT = -1e8  # exp() underflows to 0 and 0 * MASKED_LOGIT stays finite in the entropy


def consumed_mask(observation: torch.Tensor, n_items: int) -> torch.Tensor:
    """The consumed-item bitmap at the end of each observation row, as booleans ``(n, n_items)``."""
    return observation[:, -n_items:] > 0.5


def _items(action_space: spaces.Space, observation_space: spaces.Space) -> int:
    if not isinstance(action_space, spaces.Discrete):
        raise ValueError("masked policies recommend one item per step: set the environment's slate_size to 1")
    n_items = int(action_space.n)
    if observation_space.shape is None or observation_space.shape[-1] < n_items:
        raise ValueError("masked policies read the consumed items from the observation: set observe_consumed")
    return n_items


class MaskedQPolicy(DQNPolicy):
    """DQN's policy, acting greedily over the items the user has not consumed."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, *args: Any, **kwargs: Any) -> None:
        self.n_items = _items(action_space, observation_space)
        super().__init__(observation_space, action_space, *args, **kwargs)

    def _predict(self, obs: Any, deterministic: bool = True) -> torch.Tensor:
        values = self.q_net(obs).masked_fill(consumed_mask(obs, self.n_items), float("-inf"))
        return values.argmax(dim=1).reshape(-1)


class MaskedActorCriticPolicy(ActorCriticPolicy):
    """An actor-critic policy whose action distribution puts no mass on consumed items."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, *args: Any, **kwargs: Any) -> None:
        self.n_items = _items(action_space, observation_space)
        self._mask: torch.Tensor | None = None
        super().__init__(observation_space, action_space, *args, **kwargs)

    # SB3 builds the distribution from the latent code alone; each entry point that does so records the
    # mask of the observation it was given first.
    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, ...]:
        self._mask = consumed_mask(obs, self.n_items)
        return super().forward(obs, deterministic)

    def evaluate_actions(self, obs: Any, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self._mask = consumed_mask(obs, self.n_items)
        return super().evaluate_actions(obs, actions)

    def get_distribution(self, obs: Any) -> Distribution:
        self._mask = consumed_mask(obs, self.n_items)
        return super().get_distribution(obs)

    def _get_action_dist_from_latent(self, latent_pi: torch.Tensor) -> Distribution:
        if self._mask is None:
            raise RuntimeError("the consumed-item mask was not set for this observation")
        logits = self.action_net(latent_pi).masked_fill(self._mask, MASKED_LOGIT)
        self._mask = None
        return self.action_dist.proba_distribution(action_logits=logits)
