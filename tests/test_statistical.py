"""The SASRec-style statistical model on real ML-100K histories: beats chance, calibrated, seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tastesim.agents.population import split_by_time
from tastesim.eval.metrics import auc
from tastesim.rng import RandomTree, Stream
from tastesim.scoring.statistical import StatSettings, StatTables, fit_sasrec, stat_tables

SETTINGS = StatSettings(dim=16, max_len=30, epochs=8, batch_size=32)
USERS = 250


@pytest.fixture(scope="module")
def histories(ml100k):
    """(train sequences, held-out (user, item, liked) rows) of the first ``USERS`` users, split 80/20 by time."""
    users = sorted(ml100k.interactions["user"].unique(), key=int)[:USERS]
    inter = ml100k.interactions[ml100k.interactions["user"].isin(users)].reset_index(drop=True)
    inter = inter.assign(item_index=ml100k.item_index(inter["item"].tolist()), liked=inter["rating"] >= 3)
    is_train = split_by_time(inter, 0.8).to_numpy()
    row = {u: i for i, u in enumerate(users)}
    train = dict(iter(inter[is_train].groupby("user")))
    sequences = [(train[u]["item_index"].to_numpy(), train[u]["liked"].to_numpy().astype(np.int64)) for u in users]
    held = inter[~is_train]
    return sequences, (held["user"].map(row).to_numpy(), held["item_index"].to_numpy(), held["liked"].to_numpy())


def _train(histories, seed: int) -> StatTables:
    sequences, _ = histories
    model = fit_sasrec(sequences, 1682, SETTINGS, RandomTree(seed).torch_generator(Stream.STATISTICAL))
    return stat_tables(model, sequences, SETTINGS.max_len)


@pytest.fixture(scope="module")
def tables(histories) -> StatTables:
    return _train(histories, seed=3)


def test_interaction_head_beats_chance_on_held_out_items(histories, tables: StatTables) -> None:
    _, (users, items, _) = histories
    random_items = np.random.default_rng(0).integers(0, 1682, size=items.size)
    real, _ = tables.logits(users, items)
    fake, _ = tables.logits(users, random_items)
    labels = np.r_[np.ones(items.size, bool), np.zeros(items.size, bool)]
    assert auc(np.r_[real, fake], labels) > 0.7


def test_like_head_gives_calibrated_non_constant_probabilities(histories, tables: StatTables) -> None:
    _, (users, items, liked) = histories
    _, like = tables.logits(users, items)
    prob = 1 / (1 + np.exp(-like.astype(np.float64)))
    assert ((prob > 0) & (prob < 1)).all()
    assert prob.std() > 0.02  # not the published code's constant vote
    assert prob.max() < 0.999  # one sigmoid, not two: sigmoid(sigmoid(x)) would sit in (0.5, 0.73)
    assert prob.min() < 0.5
    assert abs(prob.mean() - liked.mean()) < 0.08  # calibrated in the large
    assert auc(like, liked) > 0.6


def test_seeded_training_is_identical_and_the_seed_matters(histories, tables: StatTables) -> None:
    again = _train(histories, seed=3)
    np.testing.assert_array_equal(again.user_like, tables.user_like)
    np.testing.assert_array_equal(again.item, tables.item)
    other = _train(histories, seed=4)
    assert not np.array_equal(other.item, tables.item)


def test_no_global_torch_seeding_in_the_package() -> None:
    import tastesim

    root = __import__("pathlib").Path(tastesim.__file__).parent
    offenders = [p for p in root.rglob("*.py") if "torch.manual_seed(" in p.read_text(encoding="utf-8")]
    assert offenders == []
    assert isinstance(RandomTree(1).torch_generator(Stream.STATISTICAL), torch.Generator)
