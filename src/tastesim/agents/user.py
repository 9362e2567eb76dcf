"""The Mesa agent that stands for one simulated user."""

from __future__ import annotations

import mesa

__all__ = ["UserAgent"]


class UserAgent(mesa.Agent):
    """One simulated user, built from a real user's history.

    The agent carries identity and persona (source user, segment attributes, activity); its memory and
    consumption live in the model's batched arrays at row ``index`` so a step decides all agents at once.

    Attributes:
        index: Row of this agent in the population arrays.
        user: Id of the real user whose history seeded it.
        segment: Attributes of that user (age, gender, occupation, ...), as strings.
        activity: Probability of acting in a step.
    """

    def __init__(self, model: mesa.Model, index: int, user: str, segment: dict[str, str], activity: float) -> None:
        super().__init__(model)
        self.index = index
        self.user = user
        self.segment = segment
        self.activity = activity

    def wants_to_act(self, draw: float) -> bool:
        """Whether the agent acts this step, given a uniform draw from the model's step generator."""
        return draw < self.activity
