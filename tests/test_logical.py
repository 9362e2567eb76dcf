"""The logical models and rule, on a hand-made catalog whose every feature value is derived by hand.

Catalog (categories sort to Action=bit 1, Comedy=bit 2, Drama=bit 4):

    item 0 "A" (Action)          like: fast cars {car, fast}, big explosions {explosion}
                                 dislike: thin plot {plot, thin}
    item 1 "B" (Drama)           like: strong acting {acting};  dislike: slow pacing {slow, pacing}
    item 2 "C" (Action, Drama)   like: fast cars, strong acting; dislike: thin plot, slow pacing
    item 3 "D" (Comedy)          like: speedy chases {chase, car}; dislike: loud noise {noise, loud}

Reason vectors (exact in float32): fast cars = e0, big explosions = e1, strong acting = e2, thin plot = e3,
slow pacing = e4, speedy chases = .75 e0 + .5 e1 + .25 (e6 + e7 + e8), loud noise = .5 (e3 + e5 + e9 + e10).
So cos(speedy, fast) = .75, cos(speedy, explosions) = .5, cos(loud, thin) = .5, every other pair 0.

Working memories:

    agent 0: like speedy chases [Action], dislike loud noise [Action], like strong acting [Drama],
             dislike slow pacing [Drama], like big explosions [Drama]
    agent 1: like fast cars [Drama], dislike thin plot [Drama]
    agent 2: nothing
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.helpers import draws as _draws

from tastesim.catalog import PairFeatures
from tastesim.catalog.profile import ItemProfile, Reason
from tastesim.catalog.tables import CatalogTables, ReasonBank
from tastesim.memory.working import DISLIKE, LIKE, WorkingMemory
from tastesim.scoring import logical
from tastesim.scoring.logical import LogicalRule, logical_features

DIM = 12
FAST = Reason("fast cars", ("car", "fast"))
BOOM = Reason("big explosions", ("explosion",))
ACTING = Reason("strong acting", ("acting",))
SPEEDY = Reason("speedy chases", ("chase", "car"))
THIN = Reason("thin plot", ("plot", "thin"))
SLOW = Reason("slow pacing", ("slow", "pacing"))
LOUD = Reason("loud noise", ("noise", "loud"))


def _vector(*pairs: tuple[int, float]) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    for axis, weight in pairs:
        v[axis] = weight
    return v


VECTORS = {
    FAST.text: _vector((0, 1.0)),
    BOOM.text: _vector((1, 1.0)),
    ACTING.text: _vector((2, 1.0)),
    THIN.text: _vector((3, 1.0)),
    SLOW.text: _vector((4, 1.0)),
    SPEEDY.text: _vector((0, 0.75), (1, 0.5), (6, 0.25), (7, 0.25), (8, 0.25)),
    LOUD.text: _vector((3, 0.5), (5, 0.5), (9, 0.5), (10, 0.5)),
}

PROFILES = [
    ItemProfile("A", ("Action",), (FAST, BOOM), (THIN,), "test"),
    ItemProfile("B", ("Drama",), (ACTING,), (SLOW,), "test"),
    ItemProfile("C", ("Action", "Drama"), (FAST, ACTING), (THIN, SLOW), "test"),
    ItemProfile("D", ("Comedy",), (SPEEDY,), (LOUD,), "test"),
]
ACTION, COMEDY, DRAMA = 0b001, 0b010, 0b100

AGENTS = np.array([0, 1, 2])
SLATES = np.array([[0, 1, 2, 3], [0, 1, 3, -1], [0, 2, -1, -1]])
SHOWN = SLATES >= 0

# Hand-derived expectations (see the module docstring), rows = agents 0, 1, 2.
EXPECTED = {
    # agent 0: item 0 sees only Action memories (speedy chases: "car"); item 1 only Drama ones; item 2 both
    # categories, so all memories; item 3 (Comedy) none in category, so all memories.
    # agent 1: items 0 and 3 have no memory in category -> all memories; item 1 is in category.
    "kw_pos": [[1, 1, 2, 2], [2, 0, 1, 0], [0, 0, 0, 0]],
    "kw_neg": [[0, 2, 2, 2], [2, 0, 0, 0], [0, 0, 0, 0]],
    "sim_pos": [[0.75, 1.0, 1.0, 1.0], [1.0, 0.0, 0.75, 0.0], [0.0, 0.0, 0.0, 0.0]],
    "sim_neg": [[0.5, 1.0, 1.0, 1.0], [1.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]],
    # appeal = mean over the item's like reasons of the best in-scope like similarity
    "appeal": [[(0.75 + 0.5) / 2, 1.0, (0.75 + 1.0) / 2, 1.0], [(1.0 + 0.0) / 2, 0.0, 0.75, 0.0], [0.0] * 4],
    "in_category": [[True, True, True, False], [False, True, False, False], [False] * 4],
}
# Votes: +1 like, -1 dislike, 0 tie (None below).
OUTCOME = [[True, False, None, None], [None, None, True, None], [None, None, None, None]]


def _embed(texts: list[str]) -> np.ndarray:
    return np.stack([VECTORS[t] for t in texts])


@pytest.fixture(scope="module")
def catalog() -> tuple[CatalogTables, ReasonBank]:
    return CatalogTables.build(PROFILES, _embed)


def _memory(bank: ReasonBank) -> WorkingMemory:
    rows = [
        (0, SPEEDY, LIKE, ACTION),
        (0, LOUD, DISLIKE, ACTION),
        (0, ACTING, LIKE, DRAMA),
        (0, SLOW, DISLIKE, DRAMA),
        (0, BOOM, LIKE, DRAMA),
        (1, FAST, LIKE, DRAMA),
        (1, THIN, DISLIKE, DRAMA),
    ]
    memory = WorkingMemory(n_agents=3, capacity=6)
    memory.remember(
        agents=np.array([r[0] for r in rows]),
        reasons=np.array([bank.texts.index(r[1].text) for r in rows], dtype=np.int32),
        polarity=np.array([r[2] for r in rows], dtype=np.int8),
        category_mask=np.array([r[3] for r in rows], dtype=np.int64),
        items=np.zeros(len(rows), dtype=np.int32),
        step=0,
    )
    return memory


@pytest.fixture
def features(catalog: tuple[CatalogTables, ReasonBank]) -> PairFeatures:
    tables, bank = catalog
    return logical_features(_memory(bank), AGENTS, SLATES, tables, bank)


# ---------------------------------------------------------------------------------------------- tables


def test_tables_built_from_profiles(catalog: tuple[CatalogTables, ReasonBank]) -> None:
    tables, bank = catalog
    # Reason ids in order of first appearance: all like lists first, then dislike lists.
    assert bank.texts == [FAST.text, BOOM.text, ACTING.text, SPEEDY.text, THIN.text, SLOW.text, LOUD.text]
    assert tables.like.tolist() == [[0, 1], [2, -1], [0, 2], [3, -1]]
    assert tables.dislike.tolist() == [[4, -1], [5, -1], [4, 5], [6, -1]]
    assert tables.categories == ["Action", "Comedy", "Drama"]
    assert tables.category_mask.tolist() == [ACTION, DRAMA, ACTION | DRAMA, COMEDY]
    assert tables.primary.tolist() == [0, 2, 0, 1]

    def words(ids: np.ndarray) -> set[str]:
        return {bank.keyword_vocab[k] for k in ids if k >= 0}

    assert [words(row) for row in tables.like_keywords] == [
        {"car", "fast", "explosion"},
        {"acting"},
        {"car", "fast", "acting"},
        {"chase", "car"},
    ]
    assert [words(row) for row in tables.dislike_keywords] == [
        {"plot", "thin"},
        {"slow", "pacing"},
        {"plot", "thin", "slow", "pacing"},
        {"noise", "loud"},
    ]
    assert words(bank.keywords[bank.texts.index(SPEEDY.text)]) == {"chase", "car"}
    sim = bank.similarity
    assert sim.shape == (7, 7)
    assert sim[bank.texts.index(SPEEDY.text), bank.texts.index(FAST.text)] == 0.75
    assert sim[bank.texts.index(LOUD.text), bank.texts.index(THIN.text)] == 0.5
    np.testing.assert_array_equal(np.diag(sim), np.ones(7, dtype=np.float32))


# -------------------------------------------------------------------------------------------- features


@pytest.mark.parametrize("name", list(EXPECTED))
def test_feature_values_hand_derived(features: PairFeatures, name: str) -> None:
    got = getattr(features, name)
    assert got.shape == SLATES.shape
    if name == "in_category":
        assert got.dtype == bool
        assert got.tolist() == EXPECTED[name]
    else:
        np.testing.assert_allclose(got, np.array(EXPECTED[name], dtype=np.float64), atol=1e-6)


def test_category_scope_excludes_other_categories(catalog: tuple[CatalogTables, ReasonBank]) -> None:
    tables, bank = catalog
    memory = _memory(bank)
    # Agent 0 judges item 0 (Action) with its Action memories only: kw_pos 1 ("car"), sim_pos .75.
    # Widening agent 0's "big explosions" memory to Action brings it into scope: kw_pos 2, sim_pos 1.
    boom = bank.texts.index(BOOM.text)
    memory.category_mask[0, memory.reason[0] == boom] |= ACTION
    widened = logical_features(memory, np.array([0]), np.array([[0]]), tables, bank)
    assert widened.kw_pos.tolist() == [[2]]
    assert widened.sim_pos[0, 0] == pytest.approx(1.0)
    assert widened.appeal[0, 0] == pytest.approx((0.75 + 1.0) / 2)


def test_no_memory_in_category_falls_back_to_all(catalog: tuple[CatalogTables, ReasonBank]) -> None:
    tables, bank = catalog
    memory = _memory(bank)
    # Re-label agent 1's memories as Action: item 0 is now in category (same memories, same values) while
    # item 1 (Drama) falls back to all memories, which are the same two memories.
    memory.category_mask[1, memory.reason[1] >= 0] = ACTION
    got = logical_features(memory, np.array([1]), np.array([[0, 1]]), tables, bank)
    assert got.in_category.tolist() == [[True, False]]
    assert got.kw_pos.tolist() == [[2, 0]]
    assert got.sim_pos.tolist() == [[1.0, 0.0]]


def test_padding_slots_and_repeated_agents(catalog: tuple[CatalogTables, ReasonBank], features: PairFeatures) -> None:
    tables, bank = catalog
    memory = _memory(bank)
    # The same agent may appear on several rows; padding (-1) slots are all-zero, never in category.
    got = logical_features(memory, np.array([2, 0, 0]), np.array([[-1, -1], [3, -1], [-1, 0]]), tables, bank)
    assert got.kw_pos.tolist() == [[0, 0], [2, 0], [0, 1]]
    assert got.in_category.tolist() == [[False, False], [False, False], [False, True]]
    np.testing.assert_allclose(got.appeal, [[0, 0], [1.0, 0], [0, 0.625]], atol=1e-6)


def test_empty_batch(catalog: tuple[CatalogTables, ReasonBank]) -> None:
    tables, bank = catalog
    got = logical_features(_memory(bank), np.zeros(0, dtype=np.int64), np.zeros((0, 4), dtype=np.int64), tables, bank)
    assert got.kw_pos.shape == (0, 4) and got.in_category.shape == (0, 4)


def test_chunked_batches_match(catalog: tuple[CatalogTables, ReasonBank], features: PairFeatures) -> None:
    tables, bank = catalog
    repeats = logical._CHUNK // len(AGENTS) + 2  # more rows than one chunk
    got = logical_features(_memory(bank), np.tile(AGENTS, repeats), np.tile(SLATES, (repeats, 1)), tables, bank)
    for name in EXPECTED:
        np.testing.assert_array_equal(getattr(got, name), np.tile(getattr(features, name), (repeats, 1)))


# ---------------------------------------------------------------------------------------------- rule


def _expected_likes(tie: bool) -> np.ndarray:
    return np.array([[tie if o is None else o for o in row] for row in OUTCOME]) & SHOWN


def test_rule_votes_with_certain_clicks(features: PairFeatures) -> None:
    for tie_like in (0.0, 1.0):
        rule = LogicalRule(click_threshold=-1.0, click_temperature=0.01, tie_like=tie_like)
        got = rule.decide(features, SHOWN, _draws(0, len(SHOWN)))
        assert got.click.tolist() == SHOWN.tolist()  # every shown item is clicked, padding never
        assert got.like.tolist() == _expected_likes(tie_like == 1.0).tolist()
        assert got.dislike.tolist() == (SHOWN & ~_expected_likes(tie_like == 1.0)).tolist()


def test_only_clicked_items_are_judged(features: PairFeatures) -> None:
    got = LogicalRule().decide(features, SHOWN, _draws(3, len(SHOWN)))
    assert not (got.like & got.dislike).any()
    assert ((got.like | got.dislike) == got.click).all()
    assert not (got.click & ~SHOWN).any()


def test_ties_are_broken_by_the_rng(catalog: tuple[CatalogTables, ReasonBank]) -> None:
    tables, bank = catalog
    n = 400
    slates = np.tile([0, 1, 2, 3], (n, 1))  # agent 0: like, dislike, tie, tie
    feats = logical_features(_memory(bank), np.zeros(n, dtype=np.int64), slates, tables, bank)
    rule = LogicalRule(click_threshold=-1.0, click_temperature=0.01, tie_like=0.5)
    got = rule.decide(feats, slates >= 0, _draws(11, n))
    assert got.like[:, 0].all() and got.dislike[:, 1].all()  # decided pairs never change
    for column in (2, 3):
        share = got.like[:, column].mean()
        assert 0 < share < 1  # both outcomes occur
        assert share == pytest.approx(0.5, abs=0.1)


def test_tie_like_sets_the_tie_probability() -> None:
    n = 20_000
    zeros = np.zeros((1, n), dtype=np.float32)
    ties = PairFeatures(zeros, zeros, zeros, zeros, zeros, zeros.astype(bool))
    shown = np.ones((1, n), dtype=bool)
    for tie_like in (0.2, 0.5, 0.9):
        rule = LogicalRule(click_threshold=-1.0, click_temperature=0.01, tie_like=tie_like)
        got = rule.decide(ties, shown, _draws(5, 1))
        assert got.click.all()
        assert got.like.mean() == pytest.approx(tie_like, abs=0.015)


def test_click_probability_is_the_sigmoid() -> None:
    n = 20_000
    appeal = np.full((1, n), 0.7, dtype=np.float32)
    zeros = np.zeros((1, n), dtype=np.float32)
    feats = PairFeatures(zeros, zeros, zeros, zeros, appeal, zeros.astype(bool))
    got = LogicalRule(click_threshold=0.6, click_temperature=0.08).decide(feats, np.ones((1, n), bool), _draws(9, 1))
    # sigmoid((0.7 - 0.6) / 0.08) = 1 / (1 + exp(-1.25)) = 0.7773
    assert got.click.mean() == pytest.approx(0.7773, abs=0.015)


def test_same_seed_same_decisions(features: PairFeatures) -> None:
    n = 500
    zeros = np.zeros((1, n), dtype=np.float32)
    appeal = np.full((1, n), 0.6, dtype=np.float32)  # click probability 1/2
    ties = PairFeatures(zeros, zeros, zeros, zeros, appeal, zeros.astype(bool))
    shown = np.ones((1, n), dtype=bool)
    rule = LogicalRule()
    first = rule.decide(ties, shown, _draws(42, 1))
    second = rule.decide(ties, shown, _draws(42, 1))
    other = rule.decide(ties, shown, _draws(43, 1))
    for name in ("click", "like", "dislike"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert not np.array_equal(first.click, other.click) or not np.array_equal(first.like, other.like)
    # On the hand-made catalog too: the same seed replays the same tie breaks and clicks.
    a = rule.decide(features, SHOWN, _draws(8, len(SHOWN)))
    b = rule.decide(features, SHOWN, _draws(8, len(SHOWN)))
    assert (a.click.tolist(), a.like.tolist()) == (b.click.tolist(), b.like.tolist())
