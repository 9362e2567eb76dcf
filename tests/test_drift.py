"""Interest drift dynamics on a hand-made catalog: initial state, pull, push, decay, satiation, offsets."""

from __future__ import annotations

import numpy as np
import pytest
from tests.helpers import draws as _draws

from tastesim.agents.drift import click_offset, initial_state, item_vectors, update_state
from tastesim.catalog import Decisions, PairFeatures
from tastesim.catalog.tables import CatalogTables, ReasonBank
from tastesim.memory.working import DISLIKE, LIKE, WorkingMemory
from tastesim.scenario import DriftConfig
from tastesim.scoring.logical import LogicalRule

# Three orthogonal reasons, one per item and category: item i has like reason i, category i.
VECTORS = np.eye(3, dtype=np.float32)
NO_EXPLORATION = DriftConfig(exploration=0.0)


@pytest.fixture
def catalog() -> tuple[CatalogTables, ReasonBank]:
    empty = np.full((3, 1), -1, dtype=np.int32)
    tables = CatalogTables(
        like=np.arange(3, dtype=np.int32)[:, None],
        dislike=empty,
        like_keywords=empty,
        dislike_keywords=empty,
        category_mask=np.array([1, 2, 4], dtype=np.int64),
        primary=np.arange(3, dtype=np.int32),
        categories=["A", "B", "C"],
    )
    bank = ReasonBank(["a", "b", "c"], np.full((3, 3), -1, dtype=np.int32), VECTORS, [])
    return tables, bank


def _memory() -> WorkingMemory:
    """Agent 0 likes reason 0 (strength 3) and reason 1 (strength 1); agent 1 dislikes reason 2."""
    memory = WorkingMemory(2, 4)
    memory.reason[0, :2] = [0, 1]
    memory.polarity[0, :2] = LIKE
    memory.strength[0, :2] = [3.0, 1.0]
    memory.category_mask[0, :2] = [1, 2]
    memory.reason[1, 0], memory.polarity[1, 0], memory.strength[1, 0], memory.category_mask[1, 0] = 2, DISLIKE, 1, 4
    return memory


def _decisions(like: list[list[bool]], dislike: list[list[bool]]) -> Decisions:
    like_a, dislike_a = np.array(like), np.array(dislike)
    return Decisions(click=like_a | dislike_a, like=like_a, dislike=dislike_a)


def test_item_vectors_are_unit_means_of_like_reasons(catalog) -> None:
    np.testing.assert_allclose(item_vectors(*catalog), VECTORS)


def test_initial_state_is_the_strength_weighted_centroid(catalog) -> None:
    state = initial_state(_memory(), *catalog, NO_EXPLORATION)
    np.testing.assert_allclose(state.centroid()[0], np.array([3, 1, 0]) / np.sqrt(10), rtol=1e-6)
    np.testing.assert_allclose(state.centroid()[1], [0, 0, -1])  # a dislike points away
    np.testing.assert_allclose(state.categories[0], [0.75, 0.25, 0.0])
    np.testing.assert_allclose(state.categories[1], 0.0)  # no like memory, no category interest


def test_liked_items_pull_and_disliked_items_push(catalog) -> None:
    tables, bank = catalog
    vectors = item_vectors(tables, bank)
    state = initial_state(_memory(), tables, bank, NO_EXPLORATION)
    before = state.centroid() @ vectors.T  # (agents, items) cosine
    slates = np.array([[2, 1], [0, 1]])
    decisions = _decisions([[True, False], [False, False]], [[False, False], [True, False]])
    update_state(
        state, np.array([0, 1]), slates, decisions, vectors=vectors, primary=tables.primary, params=NO_EXPLORATION
    )
    after = state.centroid() @ vectors.T
    assert after[0, 2] > before[0, 2]  # agent 0 liked item 2: closer to it
    assert after[1, 0] < before[1, 0]  # agent 1 disliked item 0: further from it
    # Hand-derived: mass_0 = 0.98 * (3, 1, 0)/sqrt(10) + 0.1 * (0, 0, 1).
    expected = 0.98 * np.array([3, 1, 0]) / np.sqrt(10) + np.array([0, 0, 0.1])
    np.testing.assert_allclose(state.mass[0], expected, rtol=1e-5)
    np.testing.assert_allclose(state.categories[0], [0.675, 0.225, 0.1], rtol=1e-6)
    np.testing.assert_allclose(state.satiation[:, 2], [1.0, 0.0])
    np.testing.assert_allclose(state.satiation[:, 0], [0.0, 1.0])


def test_decay_fades_old_interest_without_new_consumption(catalog) -> None:
    tables, bank = catalog
    vectors = item_vectors(tables, bank)
    params = DriftConfig(decay=0.5, exploration=0.0)
    state = initial_state(_memory(), tables, bank, params)
    norm = np.linalg.norm(state.mass[0])
    nothing = _decisions([[False]], [[False]])
    update_state(state, np.array([0]), np.array([[0]]), nothing, vectors=vectors, primary=tables.primary, params=params)
    assert np.linalg.norm(state.mass[0]) == pytest.approx(0.5 * norm)


def test_offset_is_zero_at_start_and_follows_drift_and_satiation(catalog) -> None:
    tables, bank = catalog
    vectors = item_vectors(tables, bank)
    state = initial_state(_memory(), tables, bank, NO_EXPLORATION)
    agents, slates = np.array([0]), np.array([[0, 2, -1]])
    kwargs = {"vectors": vectors, "primary": tables.primary, "params": NO_EXPLORATION}
    start = click_offset(state, agents, slates, draws=_draws(0, len(agents)), **kwargs)
    np.testing.assert_allclose(start, 0.0)
    liked = _decisions([[False, True, False]], [[False, False, False]])
    update_state(state, agents, slates, liked, **kwargs)
    offset = click_offset(state, agents, slates, draws=_draws(0, len(agents)), **kwargs)
    assert offset[0, 1] > 0 > offset[0, 0]  # drawn toward item 2, away from item 0 (relative to step 0)
    assert offset[0, 2] == 0.0  # empty slot
    assert state.satiation[0, 2] == 1.0  # one click in category C so far
    state.satiation[0, 2] = 10.0  # much more bored with category C
    bored = click_offset(state, agents, slates, draws=_draws(0, len(agents)), **kwargs)
    assert bored[0, 1] == pytest.approx(offset[0, 1] - NO_EXPLORATION.satiation_weight * 9.0, rel=1e-5)


def test_exploration_boosts_the_expected_share(catalog) -> None:
    tables, bank = catalog
    params = DriftConfig(exploration=0.25, exploration_bonus=2.0)
    state = initial_state(_memory(), tables, bank, params)
    slates = np.zeros((2000, 2), dtype=np.int64)
    offset = click_offset(
        state,
        np.zeros(2000, dtype=np.int64),
        slates,
        vectors=item_vectors(tables, bank),
        primary=tables.primary,
        params=params,
        draws=_draws(1, 2000),
    )
    assert set(np.unique(offset)) == {0.0, 2.0}
    assert (offset == 2.0).mean() == pytest.approx(0.25, abs=0.03)


def test_the_offset_changes_decisions() -> None:
    shape = (400, 5)
    half = np.full(shape, 0.5, dtype=np.float32)
    features = PairFeatures(
        *(np.zeros(shape, dtype=np.int16),) * 2, half, half, np.full(shape, 0.8, dtype=np.float32), half > 0
    )
    rule = LogicalRule(click_threshold=0.8, click_temperature=0.08, tie_like=0.5)
    shown = np.ones(shape, dtype=bool)
    plain = rule.decide(features, shown, _draws(3, shape[0])).click.mean()
    pushed = rule.decide(features, shown, _draws(3, shape[0]), click_offset=np.full(shape, 3.0)).click.mean()
    assert plain == pytest.approx(0.5, abs=0.05)
    assert pushed == pytest.approx(1 / (1 + np.exp(-3.0)), abs=0.05)
