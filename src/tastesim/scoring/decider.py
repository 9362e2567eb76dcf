"""The decision-model interface the simulation calls once per step (no torch import here)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from tastesim.catalog import Decisions, PairFeatures
from tastesim.memory.working import WorkingMemory
from tastesim.rng import RowDraws

__all__ = ["Decider"]


@runtime_checkable
class Decider(Protocol):
    """Decides every shown item of a step in one batched call."""

    def decide(
        self,
        memory: WorkingMemory,
        agents: np.ndarray,
        slates: np.ndarray,
        draws: RowDraws,
        click_offset: np.ndarray | None = None,
    ) -> tuple[Decisions, PairFeatures]:
        """Sample click/like/dislike for ``slates[i]`` shown to ``agents[i]`` (slots ``-1`` are empty).

        Args:
            memory: The agents' working memories.
            agents: Agent indices ``(n,)``.
            slates: Item indices ``(n, slate)``, ``-1`` for an empty slot.
            draws: The rows' keyed draws (every random draw comes from them; see ``tastesim.rng``).
            click_offset: Optional ``(n, slate)`` added to the click log-odds (drift, satiation).
        """
        ...

    def for_agents(self, agents: np.ndarray) -> Decider:
        """This decider for a batch whose memory row ``i`` is a copy of agent ``agents[i]``'s (an environment
        holding episodes of those agents): per-agent context re-indexed to the rows."""
        ...
