"""Baseline recommenders: blocked items, distinct slates, padding, popularity order and item-kNN."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tastesim.data import Dataset
from tastesim.recommenders.baselines import (
    ItemKNNRecommender,
    PopularityRecommender,
    RandomRecommender,
    Recommender,
    SlateRequest,
    make_recommender,
    top_k_unblocked,
)

# Hand-made interactions: 6 users x 6 items.
#   item 0: users 0 1 2     item 1: users 0 1 2     item 2: users 2 3
#   item 3: users 3 4       item 4: user 4          item 5: user 5
# Cosines: (0,1) = 3/3 = 1, (0,2) = (1,2) = 1/sqrt(6) = .408, (2,3) = 1/2, (3,4) = 1/sqrt(2) = .707, others 0.
HAND = sp.csr_matrix(
    np.array(
        [
            [1, 1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [0, 0, 0, 1, 1, 0],
            [0, 0, 0, 0, 0, 1],
        ],
        dtype=np.float32,
    )
)
N_ITEMS = 6


def _request(
    histories: list[list[int]],
    k: int,
    n_items: int = N_ITEMS,
    seed: int = 0,
    blocked: np.ndarray | None = None,
) -> SlateRequest:
    n = len(histories)
    rows = [r for r, items in enumerate(histories) for _ in items]
    cols = [i for items in histories for i in items]
    history = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(n, n_items))
    if blocked is None:
        blocked = history.toarray() > 0
    return SlateRequest(np.arange(n), history, blocked, k, step=1, rng=np.random.default_rng(seed))


def _slice_matrix(ds: Dataset) -> sp.csr_matrix:
    users = {u: i for i, u in enumerate(sorted(set(ds.interactions["user"])))}
    rows = ds.interactions["user"].map(users).to_numpy()
    cols = ds.item_index(ds.interactions["item"].tolist())
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(users), ds.n_items))


def _check_slates(slates: np.ndarray, blocked: np.ndarray, k: int) -> None:
    assert slates.shape == (blocked.shape[0], k)
    for row, slate in enumerate(slates):
        real = slate[slate >= 0]
        assert len(set(real.tolist())) == len(real)  # distinct
        assert not blocked[row, real].any()  # never blocked
        assert len(real) == min(k, int((~blocked[row]).sum()))  # full unless too few unblocked
        assert (slate[len(real) :] == -1).all()  # -1 only as trailing padding


# ------------------------------------------------------------------------------------ shared contract


@pytest.mark.parametrize("name", ["random", "popularity", "itemknn"])
def test_baselines_respect_blocked_items(name: str, slice_dataset: Dataset) -> None:
    matrix = _slice_matrix(slice_dataset)
    rec = make_recommender(name)
    assert isinstance(rec, Recommender) and rec.name == name
    rec.fit(matrix)
    rng = np.random.default_rng(1)
    blocked = rng.random(matrix.shape) < 0.3
    blocked |= matrix.toarray() > 0
    request = SlateRequest(np.arange(matrix.shape[0]), matrix, blocked, 10, step=0, rng=np.random.default_rng(2))
    slates = rec.recommend(request)
    _check_slates(slates, blocked, 10)
    assert (slates >= 0).all()  # plenty of unblocked items here


@pytest.mark.parametrize("name", ["random", "popularity", "itemknn"])
def test_padding_when_too_few_unblocked(name: str) -> None:
    rec = make_recommender(name)
    rec.fit(HAND)
    blocked = np.ones((3, N_ITEMS), dtype=bool)
    blocked[0, [1, 4]] = False  # two items left
    blocked[1, :] = False  # all six left, but k = 8 > catalog size
    # row 2: nothing left
    request = _request([[0], [], [5]], k=8, blocked=blocked)
    slates = rec.recommend(request)
    _check_slates(slates, blocked, 8)
    assert sorted(slates[0, :2].tolist()) == [1, 4]
    assert sorted(slates[1, :6].tolist()) == list(range(6))
    assert slates[2].tolist() == [-1] * 8


def test_top_k_unblocked_order_and_padding() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [3.0, 2.0, 1.0, 0.0]])
    blocked = np.array([[False, True, False, False], [True, True, True, False]])
    assert top_k_unblocked(scores, blocked, 2).tolist() == [[3, 2], [3, -1]]
    assert top_k_unblocked(scores, blocked, 6).tolist() == [[3, 2, 0, -1, -1, -1], [3, -1, -1, -1, -1, -1]]


def test_make_recommender() -> None:
    assert isinstance(make_recommender("random"), RandomRecommender)
    assert isinstance(make_recommender("popularity"), PopularityRecommender)
    knn = make_recommender("itemknn", neighbours=7)
    assert isinstance(knn, ItemKNNRecommender) and knn.neighbours == 7
    with pytest.raises(ValueError, match="unknown recommender 'bpr'"):
        make_recommender("bpr")


def test_empty_request() -> None:
    rec = PopularityRecommender()
    rec.fit(HAND)
    request = SlateRequest(
        np.zeros(0, dtype=np.int64),
        sp.csr_matrix((0, N_ITEMS)),
        np.zeros((0, N_ITEMS), bool),
        3,
        0,
        np.random.default_rng(0),
    )
    assert rec.recommend(request).shape == (0, 3)


# -------------------------------------------------------------------------------------------- random


def test_random_is_seeded_and_varies() -> None:
    rec = RandomRecommender()
    rec.fit(HAND)
    histories = [[] for _ in range(50)]
    a = rec.recommend(_request(histories, k=3, seed=4))
    b = rec.recommend(_request(histories, k=3, seed=4))
    c = rec.recommend(_request(histories, k=3, seed=5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert set(a[:, 0].tolist()) == set(range(N_ITEMS))  # 50 draws of the first slot hit every item


# ---------------------------------------------------------------------------------------- popularity


def test_popularity_order_matches_counts(slice_dataset: Dataset) -> None:
    matrix = _slice_matrix(slice_dataset)
    rec = PopularityRecommender()
    rec.fit(matrix)
    counts = np.asarray((matrix > 0).sum(axis=0)).ravel()
    k = 25
    slates = rec.recommend(_request([[]], k=k, n_items=slice_dataset.n_items))
    expected = np.lexsort((np.arange(counts.size), -counts))[:k]  # most counts first, ties by lower index
    assert slates[0].tolist() == expected.tolist()
    assert (np.diff(counts[slates[0]]) <= 0).all()


def test_popularity_hand_counts_and_blocking() -> None:
    rec = PopularityRecommender()
    rec.fit(HAND)
    # Counts: item0 3, item1 3, item2 2, item3 2, item4 1, item5 1 (ties by lower index).
    slates = rec.recommend(_request([[], [0], [1, 2]], k=4))
    assert slates.tolist() == [[0, 1, 2, 3], [1, 2, 3, 4], [0, 3, 4, 5]]


def test_popularity_many_agents_in_blocks() -> None:
    rec = PopularityRecommender()
    rec.fit(HAND)
    n = 5000  # more than one scoring block
    blocked = np.zeros((n, N_ITEMS), dtype=bool)
    blocked[1::2, 0] = True
    request = SlateRequest(np.arange(n), sp.csr_matrix((n, N_ITEMS)), blocked, 2, 0, np.random.default_rng(0))
    slates = rec.recommend(request)
    assert slates.shape == (n, 2)
    assert (slates[0::2] == [0, 1]).all() and (slates[1::2] == [1, 2]).all()


# -------------------------------------------------------------------------------------------- item-kNN


def test_itemknn_recommends_co_occurring_items() -> None:
    rec = ItemKNNRecommender()
    rec.fit(HAND)
    histories = [[0], [4], [3], [0, 4], [2]]
    slates = rec.recommend(_request(histories, k=3))
    # history {0}: item 1 (1.0), item 2 (.408), then the most popular rest, item 3 (2 users)
    assert slates[0].tolist() == [1, 2, 3]
    # history {4}: item 3 (.707) first
    assert slates[1, 0] == 3
    # history {3}: item 4 (.707), item 2 (.5)
    assert slates[2, :2].tolist() == [4, 2]
    # history {0, 4}: item 1 (1.0), item 3 (.707), item 2 (.408)
    assert slates[3].tolist() == [1, 3, 2]
    # history {2}: item 3 (.5), then items 0 and 1 (.408 each)
    assert slates[4, 0] == 3 and set(slates[4, 1:].tolist()) == {0, 1}


def test_itemknn_similarity_matrix() -> None:
    rec = ItemKNNRecommender()
    rec.fit(HAND)
    sim = rec.similarity.toarray()
    expected = np.zeros((N_ITEMS, N_ITEMS))
    for (a, b), value in {
        (0, 1): 1.0,
        (0, 2): 6**-0.5,
        (1, 2): 6**-0.5,
        (2, 3): 0.5,
        (3, 4): 2**-0.5,
    }.items():
        expected[a, b] = expected[b, a] = value
    np.testing.assert_allclose(sim, expected, atol=1e-6)


def test_itemknn_keeps_only_the_nearest_neighbours() -> None:
    rec = ItemKNNRecommender(neighbours=1)
    rec.fit(HAND)
    sim = rec.similarity.toarray()
    # Row 0 keeps item 1 (1.0) but drops item 2 (.408); row 2 keeps item 3 (.5) over items 0/1 (.408).
    assert np.flatnonzero(sim[0]).tolist() == [1]
    assert np.flatnonzero(sim[2]).tolist() == [3]
    assert (np.count_nonzero(sim, axis=1) <= 1).all()


def test_itemknn_empty_history_falls_back_to_popularity() -> None:
    rec = ItemKNNRecommender()
    rec.fit(HAND)
    slates = rec.recommend(_request([[]], k=4))
    assert set(slates[0, :2].tolist()) == {0, 1}  # 3 users each
    assert set(slates[0, 2:].tolist()) == {2, 3}  # 2 users each
