"""What an agent asks for: the interest it pursues and its strongest like reasons for it.

Reasons are the agent's strongest like memories (strength discounted by age), memories of the pursued
category first: read through the Chroma store (``recall: store``, the default) or straight from working
memory (``recall: working``, no store needed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tastesim.catalog.tables import CatalogTables
from tastesim.memory.store import MemoryStore
from tastesim.memory.working import LIKE, WorkingMemory
from tastesim.memory.writer import RecordFactory

__all__ = ["Interest", "choose_interest", "fill_store", "recall_from_store", "strongest_likes"]

_BATCH = 4096  # records per Chroma write (Chroma refuses batches above ~5,400)


@dataclass(frozen=True)
class Interest:
    """The category an agent pursues in one conversation, and the items it would like there.

    Attributes:
        category: Category name (the primary category of a target, or of the strongest like memory).
        mask: Category bit of ``category`` (as in ``CatalogTables.category_mask``).
        targets: Item indices of held-out items the agent's real user liked in that category.
    """

    category: str
    mask: int
    targets: tuple[int, ...]


def strongest_likes(memory: WorkingMemory, agent: int, mask: int, k: int) -> np.ndarray:
    """Slot indices of the agent's ``k`` strongest like memories, in-category first.

    Strength is discounted by age (``strength / (1 + steps since last reinforced)``), so a recent memory
    outranks an equally strong old one. Memories of the category ``mask`` come first; others fill up.
    """
    reason, polarity = memory.reason[agent], memory.polarity[agent]
    likes = np.flatnonzero((reason >= 0) & (polarity == LIKE))
    if likes.size == 0:
        return likes
    age = memory.last[agent].max() - memory.last[agent, likes]
    score = memory.strength[agent, likes] / (1.0 + age)
    in_category = (memory.category_mask[agent, likes] & mask) != 0
    order = np.lexsort((-score, ~in_category))
    return likes[order[:k]]


def choose_interest(
    memory: WorkingMemory,
    tables: CatalogTables,
    agent: int,
    liked_holdout: np.ndarray,
    rng: np.random.Generator,
) -> Interest:
    """Pick the interest of a conversation.

    The primary category of a randomly chosen held-out item the real user liked, its targets being every
    such item of that category; with no liked held-out item, the category of the agent's strongest like
    memory (no targets).
    """
    primary = tables.primary
    if liked_holdout.size:
        category = int(primary[rng.choice(liked_holdout)])
        targets = tuple(int(i) for i in liked_holdout if primary[i] == category)
    else:
        slots = strongest_likes(memory, agent, mask=0, k=1)
        item = int(memory.item[agent, slots[0]]) if slots.size else 0
        category, targets = int(primary[item]), ()
    return Interest(tables.categories[category], 1 << (category % 63), targets)


def recall_from_store(store: MemoryStore, agent: int, category: str, k: int) -> list[str]:
    """The agent's ``k`` strongest like reasons read through the Chroma store (``MemoryStore.get``).

    Ranked as :func:`strongest_likes` ranks working memory: memories of ``category`` first, then by strength
    discounted by age (``strength / (1 + steps since last reinforced)``); ties by text, so the order is stable.
    """
    records = store.get(agent_id=agent, polarity="like")
    if not records:
        return []
    now = max(r.last_step for r in records)
    ranked = sorted(records, key=lambda r: (r.category != category, -r.strength / (1 + now - r.last_step), r.text))
    return [r.text for r in ranked[:k]]


def fill_store(store: MemoryStore, memory: WorkingMemory, agents: np.ndarray, factory: RecordFactory) -> int:
    """Write the working memories of ``agents`` into ``store`` (upserts); returns the records written."""
    agents = np.unique(agents)
    rows, slots = np.nonzero(memory.reason[agents] >= 0)
    a = agents[rows]
    cols = {
        "agent": a.astype(np.int64),
        "reason": memory.reason[a, slots],
        "polarity": memory.polarity[a, slots],
        "item": memory.item[a, slots],
        "created": memory.created[a, slots],
        "strength": memory.strength[a, slots],
        "last": memory.last[a, slots],
    }
    known = set(store.ids())
    for start in range(0, a.size, _BATCH):
        factory.add(store, {k: v[start : start + _BATCH] for k, v in cols.items()}, known)
    return int(a.size)
