"""One contract, every recommender under test: the built-ins and a service over the HTTP contract.

Slates hold distinct, unblocked items, padded with -1 only at the end; an empty request gives an empty
answer; a fit with the same generator gives the same slates; and feedback changes what a learning
recommender shows (the built-ins through a refit on the simulated log, the service through /feedback).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import scipy.sparse as sp
from tests.helpers import serve_in_thread
from tests.recommender_service import LearningService

from tastesim.data import Dataset
from tastesim.recommenders import Feedback, Recommender, SlateRequest, recommender_for
from tastesim.recommenders.log import FeedbackLog
from tastesim.scenario import RecommenderConfig

NAMES = [
    "random",
    "popularity",
    "itemknn",
    "diverse",
    "mf",
    "sasrec",
    pytest.param("http", marks=pytest.mark.slow),  # a real loopback service
]
LEARNERS = [n for n in NAMES if n != "random"]


@pytest.fixture(scope="module")
def train(slice_dataset: Dataset) -> sp.csr_matrix:
    """The slice's users x items ratings."""
    inter = slice_dataset.interactions
    users = {u: i for i, u in enumerate(sorted(set(inter["user"])))}
    rows = inter["user"].map(users).to_numpy()
    cols = slice_dataset.item_index(inter["item"].tolist())
    ratings = inter["rating"].to_numpy(np.float32)
    return sp.csr_matrix((ratings, (rows, cols)), shape=(len(users), slice_dataset.n_items))


@pytest.fixture
def service(slice_dataset: Dataset) -> Iterator[LearningService]:
    with serve_in_thread(LearningService(list(slice_dataset.items["item"]))) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def make(request: pytest.FixtureRequest, slice_dataset: Dataset, train: sp.csr_matrix):
    """Build and fit the recommender named by the test's ``name`` parameter."""

    def build(name: str, seed: int = 0) -> Recommender:
        url = request.getfixturevalue("service").url if name == "http" else None
        config = RecommenderConfig(name=name, url=url, neighbours=20, factors=8)
        vectors = np.random.default_rng(1).normal(size=(slice_dataset.n_items, 8)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        users = [str(u) for u in range(train.shape[0])]
        rec = recommender_for(config, vectors, list(slice_dataset.items["item"]), users)
        rec.fit(train, np.random.default_rng(seed))
        return rec

    return build


def _request(train: sp.csr_matrix, k: int, blocked: np.ndarray | None = None, step: int = 1) -> SlateRequest:
    history = sp.csr_matrix(train > 0, dtype=np.float32)
    blocked = history.toarray() if blocked is None else blocked
    return SlateRequest(np.arange(train.shape[0]), history, blocked, k, step, np.random.default_rng(step))


def _check(slates: np.ndarray, blocked: np.ndarray, k: int) -> None:
    assert slates.shape == (blocked.shape[0], k)
    for row, slate in enumerate(slates):
        real = slate[slate >= 0]
        assert len(set(real.tolist())) == len(real)
        assert not blocked[row, real].any()
        assert len(real) == min(k, int((~blocked[row]).sum()))
        assert (slate[len(real) :] == -1).all()


@pytest.mark.parametrize("name", NAMES)
def test_a_recommender_with_its_name(make, name: str) -> None:
    rec = make(name)
    assert isinstance(rec, Recommender) and rec.name == name


@pytest.mark.parametrize("name", NAMES)
def test_slates_are_distinct_unblocked_and_full(make, train: sp.csr_matrix, name: str) -> None:
    blocked = (np.random.default_rng(2).random(train.shape) < 0.3) | (train.toarray() > 0)
    slates = make(name).recommend(_request(train, 10, blocked))
    _check(slates, blocked, 10)
    assert (slates >= 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_padding_when_too_few_items_are_left(make, train: sp.csr_matrix, name: str) -> None:
    blocked = np.ones(train.shape, dtype=bool)
    blocked[0, [3, 7]] = False  # two items left; other agents have none
    slates = make(name).recommend(_request(train, 5, blocked))
    _check(slates, blocked, 5)
    assert sorted(slates[0, :2].tolist()) == [3, 7] and (slates[1:] == -1).all()


@pytest.mark.parametrize("name", NAMES)
def test_an_empty_request_gets_an_empty_answer(make, train: sp.csr_matrix, name: str) -> None:
    empty = SlateRequest(
        np.zeros(0, dtype=np.int64),
        sp.csr_matrix((0, train.shape[1])),
        np.zeros((0, train.shape[1]), dtype=bool),
        4,
        1,
        np.random.default_rng(0),
    )
    assert make(name).recommend(empty).shape == (0, 4)


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_gives_the_same_slates(make, train: sp.csr_matrix, name: str) -> None:
    first, second = make(name, seed=5), make(name, seed=5)
    np.testing.assert_array_equal(first.recommend(_request(train, 10)), second.recommend(_request(train, 10)))


@pytest.mark.parametrize("name", LEARNERS)
def test_feedback_changes_what_a_learner_shows(make, train: sp.csr_matrix, name: str) -> None:
    rec = make(name)
    request = _request(train, 10)
    before = rec.recommend(request)
    # Every agent is shown, and clicks and likes, the least consumed item of the catalog.
    target = int(np.argmin(np.asarray((train > 0).sum(axis=0)).ravel()))
    n = train.shape[0]
    shown = np.full((n, 1), target)
    yes = np.ones((n, 1), dtype=bool)
    feedback = Feedback(1, np.arange(n), shown, yes, yes, ~yes)
    log = FeedbackLog(n, train.shape[1])
    rec.observe(feedback)
    log.add(feedback)
    rec.fit(log.training_data(train, upto=1), np.random.default_rng(0))
    blocked = request.blocked.copy()
    blocked[:, target] = False  # still allowed, so that the change can show
    after = rec.recommend(SlateRequest(request.agents, request.history, blocked, 10, 2, np.random.default_rng(2)))
    assert not np.array_equal(before, after)
    if name in ("popularity", "http"):  # counters of clicks: the target is now the most clicked item
        assert (after[:, 0] == target).all()
