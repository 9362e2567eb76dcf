"""Sample memories for the store tests (``test_memory_store.py`` and the store contract in ``contracts/``)."""

from __future__ import annotations

import numpy as np

from tastesim.memory.records import RecordFactory
from tastesim.memory.store import MemoryStore

__all__ = ["DIM", "cols", "factory", "fill", "many", "meta", "unit"]

DIM = 384


def unit(*pairs: tuple[int, float]) -> np.ndarray:
    """A unit vector of dimension ``DIM`` with the given (axis, weight) components."""
    v = np.zeros(DIM, dtype=np.float32)
    for axis, weight in pairs:
        v[axis] = weight
    return v / np.linalg.norm(v)


def meta(
    agent: int,
    polarity: str = "like",
    category: str = "Drama",
    *,
    step: int = 0,
    strength: float = 1.0,
    last_step: int | None = None,
    item: str = "1",
) -> dict:
    """Store metadata of one record (without the text)."""
    return {
        "agent_id": agent,
        "item_id": item,
        "polarity": polarity,
        "category": category,
        "step": step,
        "strength": strength,
        "last_step": step if last_step is None else last_step,
    }


def fill(store: MemoryStore) -> dict[str, np.ndarray]:
    """Agent 1 holds likes and dislikes in two categories; agent 2 holds copies that must never leak."""
    rows = [
        ("a1-exact", unit((0, 1.0)), meta(1, "like", "Drama")),
        ("a1-close", unit((0, 1.0), (1, 1.0)), meta(1, "like", "Drama")),  # cos 0.707 to axis 0
        ("a1-far", unit((0, 1.0), (1, 3.0)), meta(1, "like", "Comedy")),  # cos 0.316
        ("a1-orth", unit((2, 1.0)), meta(1, "like", "Comedy")),  # cos 0
        ("a1-dis-near", unit((0, 3.0), (1, 1.0)), meta(1, "dislike", "Drama")),  # cos 0.949
        ("a1-dis-far", unit((0, -1.0), (1, 3.0)), meta(1, "dislike", "Comedy")),  # cos -0.316
        ("a2-exact", unit((0, 1.0)), meta(2, "like", "Drama")),
        ("a2-dis", unit((0, 1.0)), meta(2, "dislike", "Drama")),
    ]
    store.add(
        [r[0] for r in rows],
        np.stack([r[1] for r in rows]),
        [f"text of {r[0]}" for r in rows],
        [r[2] for r in rows],
    )
    return {r[0]: r[1] for r in rows}


def factory() -> RecordFactory:
    """Four reasons (with their vectors) and three items, two of them Action."""
    vectors = np.stack([unit((0, 1.0)), unit((1, 1.0)), unit((0, 1.0), (1, 1.0)), unit((2, 1.0))])
    return RecordFactory(
        reason_texts=["fast cars", "big explosions", "car chases", "strong acting"],
        reason_vectors=vectors,
        item_ids=["10", "20", "30"],
        item_categories=["Action", "Action", "Drama"],
    )


def cols(**columns: list) -> dict[str, np.ndarray]:
    """Slot columns as the writer takes them."""
    return {k: np.asarray(v) for k, v in columns.items()}


def many(agents: int) -> dict[str, np.ndarray]:
    """Four new records per agent, one per reason of :func:`factory`."""
    agent = np.repeat(np.arange(agents), 4)
    n = len(agent)
    return cols(
        agent=agent,
        reason=np.tile(np.arange(4), agents),
        polarity=np.ones(n, dtype=int),
        item=agent % 3,
        created=np.ones(n, dtype=int),
        strength=np.ones(n),
        last=np.ones(n, dtype=int),
    )
