"""Personal taste in the scorer: the user x reason affinity on hand-made ratings, reproducible taste tables,
and training that never reads the test part (changing every held-out rating changes no weight)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tastesim.analysis.keyphrase import KeyphraseAnalyser
from tastesim.catalog.tables import CatalogTables
from tastesim.data.dataset import Dataset
from tastesim.data.split import split_by_time
from tastesim.embedding import make_embedder
from tastesim.scoring.bundle import BundleSettings, train_bundle
from tastesim.scoring.statistical import StatSettings
from tastesim.scoring.taste import TASTE_FEATURES, Affinity, TasteSettings, fit_taste, taste_columns

# Items 0-3 carry reason 0 ("warm tone"), items 4-7 reason 1 ("fragile"); item 8 both.
REASONS = np.array([[0, -1]] * 4 + [[1, -1]] * 4 + [[0, 1]], dtype=np.int64)


def _ratings() -> sp.csr_matrix:
    """User 0 loves reason-0 items and hates reason-1 items; user 1 the opposite; user 2 likes everything."""
    dense = np.zeros((3, 9))
    dense[0, :3], dense[0, 4:7] = 5, 1
    dense[1, :3], dense[1, 4:7] = 1, 5
    dense[2, [0, 1, 4, 5]] = 4
    return sp.csr_matrix(dense)


def _tables(seed: int = 0):
    matrix = _ratings()
    timeline = (matrix.tocoo().col, np.arange(matrix.nnz))
    latest = np.full((3, 20), -1)
    for row in range(3):
        items = matrix[row].indices
        latest[row, 20 - len(items) :] = items
    settings = TasteSettings(mf_factors=2, als_factors=2, embedding_dim=2)
    rng = np.random.default_rng(seed)
    return fit_taste(matrix, timeline, latest, REASONS, 2, like_threshold=3.0, settings=settings, rng=rng)


def test_affinity_says_which_reasons_each_user_rewards_or_punishes() -> None:
    taste = _tables()
    users = np.array([0, 1, 2])[:, None]
    warm = taste.affinity.lookup(users, np.zeros((3, 1), dtype=np.int64))[:, 0]
    fragile = taste.affinity.lookup(users, np.ones((3, 1), dtype=np.int64))[:, 0]
    assert warm[0] > 0 > fragile[0] and fragile[1] > 0 > warm[1]
    assert warm[2] == pytest.approx(fragile[2])  # likes everything: no reason is preferred
    assert taste.affinity.lookup(users, np.full((3, 1), -1))[:, 0].tolist() == [0, 0, 0]
    sparse = Affinity(taste.affinity.keys, taste.affinity.values, taste.affinity.n_reasons)  # no dense table
    probe = np.array([[0, 1, -1]] * 3)
    np.testing.assert_array_equal(sparse.lookup(users, probe), taste.affinity.lookup(users, probe))


def test_taste_columns_read_the_user_of_each_row_and_the_unseen_item_8() -> None:
    taste = _tables()
    slates = np.array([[8, 3], [8, 7]])
    columns = taste_columns(taste, np.array([0, 1]), slates, REASONS[slates], np.full((*slates.shape, 1), -1))
    assert len(columns) == len(TASTE_FEATURES)
    values = dict(zip(TASTE_FEATURES, columns, strict=True))
    assert all(c.shape == slates.shape for c in columns)
    # user 0 rewards item 3's warm tone; user 1 punishes it
    assert values["affinity_like"][0, 1] > 0 and values["user_like_rate"][0, 0] == values["user_like_rate"][0, 1]


def test_taste_tables_are_reproducible_from_the_generator() -> None:
    a, b, c = _tables(3), _tables(3), _tables(4)
    np.testing.assert_array_equal(a.mf_user, b.mf_user)
    np.testing.assert_array_equal(a.embedding, b.embedding)
    assert not np.array_equal(a.mf_user, c.mf_user)


@pytest.fixture(scope="module")
def small(ml100k):
    users = sorted(ml100k.interactions["user"].unique(), key=int)[:60]
    inter = ml100k.interactions[ml100k.interactions["user"].isin(users)].reset_index(drop=True)
    items = ml100k.items[ml100k.items["item"].isin(set(inter["item"]))].reset_index(drop=True)
    dataset = Dataset("ml-100k-60", inter, items)
    embedder = make_embedder("hashing")
    tables, bank = CatalogTables.build(KeyphraseAnalyser(embedder).analyse(dataset), embedder.embed)
    return dataset, tables, bank


@pytest.mark.slow
def test_no_weight_or_tuned_size_depends_on_the_test_part(small) -> None:
    dataset, tables, bank = small
    settings = BundleSettings(seed=3, stat=StatSettings(dim=8, epochs=2))
    held = ~split_by_time(dataset.interactions, settings.train_fraction).to_numpy()
    flipped = dataset.interactions.copy()
    flipped.loc[held, "rating"] = 6 - flipped.loc[held, "rating"]  # every held-out like becomes a dislike
    other = Dataset(dataset.name, flipped, dataset.items)
    first, pairs = train_bundle(dataset, tables, bank, settings)
    second, pairs_again = train_bundle(other, tables, bank, settings)
    assert first.taste == second.taste
    np.testing.assert_array_equal(pairs.features, pairs_again.features)
    for name in ("learned", "distilled", "stat_model"):
        for x, y in zip(
            getattr(first, name).state_dict().values(), getattr(second, name).state_dict().values(), strict=True
        ):
            assert torch.equal(x, y), name
