"""Settings of the Gymnasium environment: episode length, patience, users, actions and rewards."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["EnvConfig", "Rewards"]


class Rewards(BaseModel):
    """Reward per shown item, from the simulated user's decision (summed over a slate).

    A shown item is skipped (not clicked) or clicked; a clicked item is liked or disliked (the decision
    model judges every click). A clicked-and-liked item earns ``click + like``, a clicked-but-not-liked one
    ``click + dislike``, an item the user had already consumed ``repeat`` (it is not shown).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    like: float = Field(1.0, description="a liked item")
    click: float = Field(0.0, description="any click, liked or not (click-without-like = click + dislike)")
    dislike: float = Field(-0.5, description="a clicked item the user disliked")
    skip: float = Field(0.0, description="a shown item the user did not click")
    repeat: float = Field(-1.0, description="an item the user had already consumed (not shown)")


class EnvConfig(BaseModel):
    """One episode is one simulated user (see :mod:`tastesim.gym`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    episode_steps: int = Field(20, ge=1, le=10_000, description="steps before an episode is truncated")
    patience: tuple[int, int] = Field(
        (3, 8), description="steps without a like a user tolerates before leaving, drawn per episode in [lo, hi]"
    )
    slate_size: int = Field(1, ge=1, le=50, description="items per action: 1 = an item index, more = a slate")
    users: Literal["train", "test", "all"] = Field(
        "train", description="which users episodes are drawn from: train, held-out test, or all"
    )
    train_share: float = Field(0.8, gt=0, lt=1, description="share of the users in the train set (seeded split)")
    observe_consumed: bool = Field(True, description="append the consumed-item bitmap to the observation")
    rewards: Rewards = Rewards()

    @model_validator(mode="after")
    def _patience(self) -> EnvConfig:
        low, high = self.patience
        if not 1 <= low <= high:
            raise ValueError(f"patience must be 1 <= lo <= hi, got {self.patience}")
        return self
