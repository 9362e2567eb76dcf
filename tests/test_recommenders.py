"""Each built-in recommender's own behaviour: popularity order, item-kNN similarities, random seeding, matrix
factorisation, and refits on simulated feedback (the shared contract is tests/contracts)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tastesim.data import Dataset
from tastesim.recommenders import Feedback, SlateRequest, top_k_unblocked
from tastesim.recommenders.baselines import ItemKNNRecommender, PopularityRecommender, RandomRecommender
from tastesim.recommenders.log import FeedbackLog

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


def test_top_k_unblocked_order_and_padding() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [3.0, 2.0, 1.0, 0.0]])
    blocked = np.array([[False, True, False, False], [True, True, True, False]])
    assert top_k_unblocked(scores, blocked, 2).tolist() == [[3, 2], [3, -1]]
    assert top_k_unblocked(scores, blocked, 6).tolist() == [[3, 2, 0, -1, -1, -1], [3, -1, -1, -1, -1, -1]]


# -------------------------------------------------------------------------------------------- random


def test_random_is_seeded_and_varies() -> None:
    rec = RandomRecommender()
    rec.fit(HAND, np.random.default_rng(0))
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
    rec.fit(matrix, np.random.default_rng(0))
    counts = np.asarray((matrix > 0).sum(axis=0)).ravel()
    k = 25
    slates = rec.recommend(_request([[]], k=k, n_items=slice_dataset.n_items))
    expected = np.lexsort((np.arange(counts.size), -counts))[:k]  # most counts first, ties by lower index
    assert slates[0].tolist() == expected.tolist()
    assert (np.diff(counts[slates[0]]) <= 0).all()


def test_popularity_hand_counts_and_blocking() -> None:
    rec = PopularityRecommender()
    rec.fit(HAND, np.random.default_rng(0))
    # Counts: item0 3, item1 3, item2 2, item3 2, item4 1, item5 1 (ties by lower index).
    slates = rec.recommend(_request([[], [0], [1, 2]], k=4))
    assert slates.tolist() == [[0, 1, 2, 3], [1, 2, 3, 4], [0, 3, 4, 5]]


def test_popularity_many_agents_in_blocks() -> None:
    rec = PopularityRecommender()
    rec.fit(HAND, np.random.default_rng(0))
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
    rec.fit(HAND, np.random.default_rng(0))
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
    rec.fit(HAND, np.random.default_rng(0))
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
    rec.fit(HAND, np.random.default_rng(0))
    sim = rec.similarity.toarray()
    # Row 0 keeps item 1 (1.0) but drops item 2 (.408); row 2 keeps item 3 (.5) over items 0/1 (.408).
    assert np.flatnonzero(sim[0]).tolist() == [1]
    assert np.flatnonzero(sim[2]).tolist() == [3]
    assert (np.count_nonzero(sim, axis=1) <= 1).all()


def test_itemknn_empty_history_falls_back_to_popularity() -> None:
    rec = ItemKNNRecommender()
    rec.fit(HAND, np.random.default_rng(0))
    slates = rec.recommend(_request([[]], k=4))
    assert set(slates[0, :2].tolist()) == {0, 1}  # 3 users each
    assert set(slates[0, 2:].tolist()) == {2, 3}  # 2 users each


# ------------------------------------------------------------------------------- matrix factorisation


def _blocks(n_users: int = 40, n_items: int = 20) -> sp.csr_matrix:
    """Two taste blocks: users 0..19 consume items 0..9, users 20..39 items 10..19 (each 6 of the 10)."""
    rng = np.random.default_rng(3)
    dense = np.zeros((n_users, n_items), dtype=np.float32)
    for user in range(n_users):
        block = 0 if user < n_users // 2 else 10
        dense[user, block + rng.choice(10, size=6, replace=False)] = 1.0
    return sp.csr_matrix(dense)


def test_mf_recommends_from_the_agents_own_block() -> None:
    from tastesim.recommenders.mf import MatrixFactorisation

    train = _blocks()
    rec = MatrixFactorisation(factors=8, iterations=20)
    rec.fit(train, np.random.default_rng(0))
    # Two agents never seen in fitting: one consumed items of block A, one of block B.
    slates = rec.recommend(_request([[0, 1, 2], [10, 11, 12]], k=5, n_items=20))
    assert (slates[0] < 10).all() and (slates[1] >= 10).all()


def test_mf_fit_is_reproducible_and_the_seed_matters() -> None:
    from tastesim.recommenders.mf import MatrixFactorisation

    def factors(seed: int) -> np.ndarray:
        rec = MatrixFactorisation(factors=8, iterations=3)
        rec.fit(_blocks(), np.random.default_rng(seed))
        return rec._model.item_factors

    np.testing.assert_array_equal(factors(1), factors(1))
    assert not np.array_equal(factors(1), factors(2))


# ------------------------------------------------------------------------------------- feedback log


def _feedback(step: int, agents: list[int], slates: list[list[int]], click, like) -> Feedback:
    click, like = np.array(click, dtype=bool), np.array(like, dtype=bool)
    return Feedback(step, np.array(agents), np.array(slates), click, like, click & ~like)


def test_the_log_weighs_clicks_and_likes_and_restores_to_a_step() -> None:
    log = FeedbackLog(n_agents=3, n_items=N_ITEMS)
    log.add(_feedback(1, [0, 2], [[4, 5], [5, -1]], [[True, False], [True, False]], [[True, False], [False, False]]))
    log.add(_feedback(2, [1], [[3, 4]], [[True, True]], [[False, True]]))
    assert log.matrix(upto=1).toarray()[[0, 2]].tolist() == [[0, 0, 0, 0, 2, 0], [0, 0, 0, 0, 0, 1]]
    assert log.matrix(upto=2)[1].toarray().tolist() == [[0, 0, 0, 1, 2, 0]]
    data = log.training_data(HAND, upto=2)
    assert data.shape == (HAND.shape[0] + 3, N_ITEMS) and data[: HAND.shape[0]].max() == 1
    restored = FeedbackLog(3, N_ITEMS)
    restored.restore(log.state(), upto=1)
    assert (restored.matrix(upto=5) != log.matrix(upto=1)).nnz == 0
    # A recommender that is never refitted keeps no log: a long run neither grows nor checkpoints one.
    unkept = FeedbackLog(3, N_ITEMS, keep=False)
    unkept.add(_feedback(1, [0], [[4, 5]], [[True, True]], [[True, False]]))
    assert unkept.matrix(upto=1).nnz == 0 and len(unkept.state()["agent"]) == 0


def test_popularity_refitted_on_simulated_clicks_changes_its_slates() -> None:
    rec = PopularityRecommender()
    rec.fit(HAND, np.random.default_rng(0))
    before = rec.recommend(_request([[]], k=2))
    log = FeedbackLog(n_agents=4, n_items=N_ITEMS)
    log.add(_feedback(1, [0, 1, 2, 3], [[5]] * 4, [[True]] * 4, [[False]] * 4))  # four agents clicked item 5
    rec.fit(log.training_data(HAND, upto=1), np.random.default_rng(0))
    after = rec.recommend(_request([[]], k=2))
    assert before.tolist() == [[0, 1]] and after.tolist() == [[5, 0]]  # 1 + 4 consumers now: the most popular
