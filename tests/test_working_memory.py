"""WorkingMemory.remember: reinforcement, merging, eviction and checkpoint state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tastesim.memory.working import DISLIKE, LIKE, WorkingMemory


def _remember(
    memory: WorkingMemory,
    events: list[tuple[int, int, int]],
    *,
    step: int,
    weights: list[float] | None = None,
    masks: list[int] | None = None,
    items: list[int] | None = None,
):
    """``events`` are (agent, reason, polarity) rows."""
    arr = np.array(events, dtype=np.int64).reshape(-1, 3)
    n = len(arr)
    return memory.remember(
        agents=arr[:, 0],
        reasons=arr[:, 1].astype(np.int32),
        polarity=arr[:, 2].astype(np.int8),
        category_mask=np.array(masks if masks is not None else [1] * n, dtype=np.int64),
        items=np.array(items if items is not None else [0] * n, dtype=np.int32),
        step=step,
        weight=None if weights is None else np.array(weights, dtype=np.float32),
    )


def _held(memory: WorkingMemory, agent: int) -> dict[tuple[int, int], float]:
    """{(reason, polarity): strength} of an agent's occupied slots."""
    return {
        (int(r), int(p)): float(s)
        for r, p, s in zip(memory.reason[agent], memory.polarity[agent], memory.strength[agent], strict=True)
        if r >= 0
    }


def _pairs(array: np.ndarray) -> set[tuple[int, int]]:
    return {(int(a), int(s)) for a, s in array}


def _slot(memory: WorkingMemory, agent: int, reason: int, polarity: int) -> int:
    """The slot holding (reason, polarity) for ``agent``; slot order itself is an implementation detail."""
    hits = np.flatnonzero((memory.reason[agent] == reason) & (memory.polarity[agent] == polarity))
    assert hits.size == 1, f"agent {agent} holds reason {reason}/{polarity} {hits.size} times"
    return int(hits[0])


def test_new_memory_fills_first_free_slot() -> None:
    memory = WorkingMemory(n_agents=2, capacity=3)
    assert memory.count().tolist() == [0, 0]
    changes = _remember(memory, [(1, 7, LIKE)], step=4, masks=[0b101], items=[42])
    slot = _slot(memory, 1, 7, LIKE)
    assert _pairs(changes.created) == {(1, slot)}
    assert changes.reinforced.shape == (0, 2)
    assert memory.count().tolist() == [0, 1]
    assert memory.category_mask[1, slot] == 0b101
    assert memory.strength[1, slot] == 1.0  # default weight
    assert memory.created[1, slot] == 4 and memory.last[1, slot] == 4
    assert memory.item[1, slot] == 42
    assert memory.reason[0].tolist() == [-1, -1, -1]


def test_reinforcement_adds_strength() -> None:
    memory = WorkingMemory(1, 4)
    _remember(memory, [(0, 3, LIKE)], step=1, masks=[0b01], items=[10])
    slot = _slot(memory, 0, 3, LIKE)
    changes = _remember(memory, [(0, 3, LIKE)], step=5, weights=[2.5], masks=[0b10], items=[11])
    assert changes.created.shape == (0, 2)
    assert _pairs(changes.reinforced) == {(0, slot)}
    assert memory.count().tolist() == [1]
    assert memory.strength[0, slot] == pytest.approx(3.5)
    assert memory.category_mask[0, slot] == 0b11  # masks are OR-ed
    assert memory.created[0, slot] == 1  # creation step kept
    assert memory.last[0, slot] == 5
    assert memory.item[0, slot] == 10  # the item that created the memory is kept


def test_same_reason_with_other_polarity_is_another_memory() -> None:
    memory = WorkingMemory(1, 4)
    _remember(memory, [(0, 3, LIKE), (0, 3, DISLIKE)], step=0)
    assert _held(memory, 0) == {(3, LIKE): 1.0, (3, DISLIKE): 1.0}
    _remember(memory, [(0, 3, DISLIKE)], step=1)
    assert _held(memory, 0) == {(3, LIKE): 1.0, (3, DISLIKE): 2.0}


def test_duplicates_within_one_call_are_merged() -> None:
    memory = WorkingMemory(2, 4)
    changes = _remember(
        memory,
        [(0, 5, LIKE), (1, 5, LIKE), (0, 5, LIKE), (0, 5, LIKE)],
        step=2,
        weights=[1.0, 4.0, 0.5, 0.25],
        masks=[0b001, 0b001, 0b100, 0b010],
        items=[8, 9, 6, 7],
    )
    s0, s1 = _slot(memory, 0, 5, LIKE), _slot(memory, 1, 5, LIKE)
    assert _pairs(changes.created) == {(0, s0), (1, s1)}
    assert memory.count().tolist() == [1, 1]
    assert memory.strength[0, s0] == pytest.approx(1.75)
    assert memory.category_mask[0, s0] == 0b111
    assert memory.item[0, s0] == 8  # first event's item
    assert memory.strength[1, s1] == pytest.approx(4.0)
    assert memory.item[1, s1] == 9


def test_negative_reasons_are_ignored() -> None:
    memory = WorkingMemory(1, 2)
    changes = _remember(memory, [(0, -1, LIKE), (0, 2, LIKE), (0, -1, DISLIKE)], step=0, weights=[9, 1, 9])
    assert _held(memory, 0) == {(2, LIKE): 1.0}
    assert len(changes.created) == 1
    nothing = _remember(memory, [(0, -1, LIKE)], step=1)
    assert nothing.created.shape == (0, 2) and nothing.reinforced.shape == (0, 2)


def test_full_memory_evicts_the_weakest() -> None:
    memory = WorkingMemory(1, 3)
    _remember(memory, [(0, 1, LIKE), (0, 2, LIKE), (0, 3, DISLIKE)], step=0, weights=[3.0, 1.0, 2.0])
    weakest = _slot(memory, 0, 2, LIKE)
    kept = {r: _slot(memory, 0, r, p) for r, p in ((1, LIKE), (3, DISLIKE))}
    changes = _remember(memory, [(0, 4, LIKE)], step=6, weights=[1.5], items=[99])
    # Reason 2 (strength 1) is evicted and the newcomer takes its slot; the others do not move.
    assert _pairs(changes.created) == {(0, weakest)}
    assert _slot(memory, 0, 4, LIKE) == weakest
    assert {r: _slot(memory, 0, r, p) for r, p in ((1, LIKE), (3, DISLIKE))} == kept
    assert _held(memory, 0) == {(1, LIKE): 3.0, (4, LIKE): 1.5, (3, DISLIKE): 2.0}
    assert memory.created[0, weakest] == 6 and memory.last[0, weakest] == 6
    assert memory.item[0, weakest] == 99


def test_eviction_tie_goes_to_least_recently_used() -> None:
    memory = WorkingMemory(1, 3)
    _remember(memory, [(0, 1, LIKE)], step=0)
    _remember(memory, [(0, 2, LIKE)], step=1)
    _remember(memory, [(0, 3, LIKE)], step=2)
    _remember(memory, [(0, 1, LIKE)], step=3, weights=[0.0])  # touched: reason 1 is now the most recent
    assert memory.last[0, _slot(memory, 0, 1, LIKE)] == 3
    oldest = _slot(memory, 0, 2, LIKE)
    _remember(memory, [(0, 9, LIKE)], step=4)
    # All three have strength 1; reason 2 (last used at step 1) goes.
    assert _held(memory, 0) == {(1, LIKE): 1.0, (9, LIKE): 1.0, (3, LIKE): 1.0}
    assert _slot(memory, 0, 9, LIKE) == oldest


def test_newcomer_weaker_than_all_is_not_kept() -> None:
    memory = WorkingMemory(1, 2)
    _remember(memory, [(0, 1, LIKE), (0, 2, DISLIKE)], step=0, weights=[3.0, 2.0])
    before = {name: array.copy() for name, array in memory.state().items()}
    changes = _remember(memory, [(0, 5, LIKE)], step=1, weights=[1.0])
    assert changes.created.shape == (0, 2)
    assert changes.reinforced.shape == (0, 2)
    for name, array in memory.state().items():
        np.testing.assert_array_equal(array, before[name], err_msg=name)


def test_newcomer_as_strong_as_the_weakest_replaces_it() -> None:
    memory = WorkingMemory(1, 2)
    _remember(memory, [(0, 1, LIKE), (0, 2, DISLIKE)], step=0, weights=[3.0, 2.0])
    _remember(memory, [(0, 5, LIKE)], step=1, weights=[2.0])
    assert _held(memory, 0) == {(1, LIKE): 3.0, (5, LIKE): 2.0}


def test_merged_duplicates_can_outweigh_the_weakest() -> None:
    memory = WorkingMemory(1, 2)
    _remember(memory, [(0, 1, LIKE), (0, 2, LIKE)], step=0, weights=[3.0, 2.0])
    # Three events of 1.0 each merge into one newcomer of strength 3.0 > 2.0.
    _remember(memory, [(0, 7, DISLIKE)] * 3, step=1)
    assert _held(memory, 0) == {(1, LIKE): 3.0, (7, DISLIKE): 3.0}


def test_too_many_newcomers_at_once_keeps_the_strongest() -> None:
    memory = WorkingMemory(1, 2)
    changes = _remember(memory, [(0, 1, LIKE), (0, 2, LIKE), (0, 3, DISLIKE)], step=0, weights=[1.0, 3.0, 2.0])
    assert _held(memory, 0) == {(2, LIKE): 3.0, (3, DISLIKE): 2.0}
    assert _pairs(changes.created) == {(0, 0), (0, 1)}


def test_agents_are_independent() -> None:
    memory = WorkingMemory(3, 1)
    _remember(memory, [(0, 1, LIKE), (2, 1, LIKE)], step=0, weights=[5.0, 1.0])
    _remember(memory, [(0, 2, LIKE), (1, 2, LIKE), (2, 2, LIKE)], step=1, weights=[2.0, 2.0, 2.0])
    assert _held(memory, 0) == {(1, LIKE): 5.0}  # stronger memory kept
    assert _held(memory, 1) == {(2, LIKE): 2.0}  # free slot
    assert _held(memory, 2) == {(2, LIKE): 2.0}  # weaker memory evicted


def test_state_round_trip(tmp_path: Path) -> None:
    memory = WorkingMemory(3, 4)
    _remember(
        memory,
        [(0, 1, LIKE), (0, 2, DISLIKE), (2, 7, LIKE), (1, 3, LIKE)],
        step=3,
        weights=[1.0, 2.0, 0.5, 4.0],
        masks=[1, 2, 4, 8],
        items=[10, 11, 12, 13],
    )
    _remember(memory, [(0, 1, LIKE)], step=5)
    path = tmp_path / "memory.npz"
    np.savez(path, **memory.state())
    with np.load(path) as data:
        restored = WorkingMemory.from_state(dict(data))
    assert restored.capacity == 4 and restored.n_agents == 3
    for name, array in memory.state().items():
        np.testing.assert_array_equal(getattr(restored, name), array, err_msg=name)
        assert getattr(restored, name).dtype == array.dtype
    # The restored memory behaves the same and is independent of the original.
    _remember(restored, [(0, 1, LIKE)], step=6)
    assert _held(restored, 0)[(1, LIKE)] == pytest.approx(3.0)
    assert _held(memory, 0)[(1, LIKE)] == pytest.approx(2.0)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        WorkingMemory(2, 0)
