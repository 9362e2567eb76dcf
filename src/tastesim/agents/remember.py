"""What an agent keeps of a step: the reasons of the items it liked and disliked, into working memory."""

from __future__ import annotations

import numpy as np

from tastesim.catalog import CatalogTables, Decisions
from tastesim.memory.working import DISLIKE, LIKE, MemoryChanges, WorkingMemory

__all__ = ["remember_decisions"]


def remember_decisions(
    memory: WorkingMemory,
    tables: CatalogTables,
    rows: np.ndarray,
    slates: np.ndarray,
    decisions: Decisions,
    *,
    step: int,
) -> list[MemoryChanges]:
    """Liked items add like memories (their like reasons), disliked items dislike memories.

    Args:
        memory: Working memories; ``rows`` index it (one per slate).
        tables: The catalog's reason tables.
        rows: Memory row of each slate ``(n,)``.
        slates: Item indices ``(n, k)``, ``-1`` for an empty slot.
        decisions: The decisions on the slates.
        step: The step stored with the memories.

    Returns:
        The slot changes of each polarity that had events (for a store kept in step).
    """
    agent_of = np.broadcast_to(rows[:, None], slates.shape)
    changes = []
    for polarity, chosen, reasons_of in (
        (LIKE, decisions.like, tables.like),
        (DISLIKE, decisions.dislike, tables.dislike),
    ):
        agents, items = agent_of[chosen], slates[chosen]
        if items.size == 0:
            continue
        reasons = reasons_of[items]
        width = reasons.shape[1]
        changes.append(
            memory.remember(
                agents=np.repeat(agents, width),
                reasons=reasons.ravel(),
                polarity=np.full(reasons.size, polarity, dtype=np.int8),
                category_mask=np.repeat(tables.category_mask[items], width),
                items=np.repeat(items, width),
                step=step,
            )
        )
    return changes
