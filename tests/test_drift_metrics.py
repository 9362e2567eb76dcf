"""Drift metrics on hand-made distributions, slates and populations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tastesim.agents.drift import InterestState
from tastesim.agents.population import Population
from tastesim.catalog import Decisions
from tastesim.world.drift_metrics import (
    DRIFT_METRICS,
    DriftTracker,
    drift_headline,
    entropy_bits,
    gini,
    intra_list_distance,
    js_divergence,
    segment_labels,
)


def test_entropy_in_bits() -> None:
    assert entropy_bits(np.array([1, 1, 1, 1])) == pytest.approx(2.0)
    assert entropy_bits(np.array([5, 0, 0])) == pytest.approx(0.0)
    assert entropy_bits(np.array([0, 0])) == 0.0
    np.testing.assert_allclose(entropy_bits(np.array([[1, 1], [3, 1]])), [1.0, 0.8112781244591328])


def test_js_divergence_hand_values() -> None:
    assert js_divergence([0.2, 0.8], [2, 8]) == pytest.approx(0.0)  # normalised first
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint supports: 1 bit
    # p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4); JS = H(m) - (H(p) + H(q)) / 2 = 0.811278 - 0.5.
    assert js_divergence([1, 0], [0.5, 0.5]) == pytest.approx(0.31127812445913283)
    assert js_divergence([1, 0], [0.5, 0.5]) == pytest.approx(js_divergence([0.5, 0.5], [1, 0]))
    assert js_divergence([0, 0], [1, 0]) == 0.0


def test_gini_hand_values() -> None:
    assert gini(np.array([3, 3, 3, 3])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 8])) == pytest.approx(0.75)  # (n - 1) / n for all on one of n
    # Sorted (1, 2, 3): 2 * (1 + 4 + 9) / (3 * 6) - 4 / 3 = 2/9.
    assert gini(np.array([3, 1, 2])) == pytest.approx(2 / 9)
    assert gini(np.zeros(4)) == 0.0


def test_intra_list_distance() -> None:
    vectors = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    slates = np.array([[0, 1, -1], [0, 2, -1], [0, -1, -1]])
    ild = intra_list_distance(slates, vectors)
    assert ild[0] == pytest.approx(1.0)  # orthogonal pair
    assert ild[1] == pytest.approx(0.0)  # identical pair
    assert np.isnan(ild[2])  # a single item has no pair
    assert intra_list_distance(np.array([[0, 1, 2]]), vectors)[0] == pytest.approx(2 / 3)  # pairs: 1, 0, 1


def _population() -> Population:
    train = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=np.float32))
    segments = [{"age": "19", "gender": "F"}, {"age": "40", "gender": "M"}, {"gender": "M"}]
    users = np.array(["a", "b", "c"])
    return Population(users, train, np.arange(3), users, np.zeros(4, dtype=np.int64), np.zeros(0, np.int64), segments)


def test_segment_labels() -> None:
    labels = segment_labels(_population(), ("age", "gender", "activity", "occupation"))
    assert labels["age"].tolist() == ["<25", "35-49", "unknown"]
    assert labels["gender"].tolist() == ["F", "M", "M"]
    assert labels["activity"].tolist() == ["light", "medium", "heavy"]
    assert labels["occupation"].tolist() == ["unknown"] * 3


def _state(categories: np.ndarray, mass: np.ndarray, initial_categories: np.ndarray, initial: np.ndarray):
    n, c = categories.shape
    return InterestState(
        mass.astype(np.float32),
        initial.astype(np.float32),
        categories.astype(np.float32),
        initial_categories.astype(np.float32),
        np.zeros((n, c), dtype=np.float32),
    )


def test_tracker_rows_per_segment_hand_derived() -> None:
    start_cats = np.array([[0.5, 0.5], [0.5, 0.5]])
    start = _state(start_cats, np.array([[1.0, 0.0], [1.0, 0.0]]), start_cats, np.array([[1.0, 0.0], [1.0, 0.0]]))
    # Agent 0 narrowed to category 0 and turned 90 degrees; agent 1 did not move.
    after = _state(np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([[0.0, 2.0], [1.0, 0.0]]), start_cats, start.initial)
    tracker = DriftTracker(
        {"gender": np.array(["F", "M"], dtype=object)},
        primary=np.array([0, 1, 0]),
        vectors=np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32),
        categories=["A", "B"],
    )
    slates = np.array([[0, 1], [0, 2]])
    click = np.array([[True, True], [True, False]])
    like = np.array([[True, False], [True, False]])
    tracker.measure(1, np.array([0, 1]), slates, Decisions(click, like, click & ~like), before=start, after=after)
    rows = tracker.frame().set_index(["attribute", "segment"])
    assert list(tracker.frame().columns) == ["step", "attribute", "segment", *DRIFT_METRICS]
    everyone, female, male = rows.loc[("all", "all")], rows.loc[("gender", "F")], rows.loc[("gender", "M")]
    assert everyone["centroid_shift"] == pytest.approx(0.5)  # mean of (1 - 0) and (1 - 1)
    assert female["centroid_shift"] == pytest.approx(1.0) and male["centroid_shift"] == pytest.approx(0.0)
    assert female["filter_bubble"] == pytest.approx(1.0) and male["filter_bubble"] == pytest.approx(0.0)
    assert everyone["filter_bubble"] == pytest.approx(0.5)
    # Population mean categories (0.75, 0.25) against (0.5, 0.5).
    assert everyone["category_js_start"] == pytest.approx(js_divergence([0.75, 0.25], [0.5, 0.5]))
    assert everyone["category_js_prev"] == pytest.approx(everyone["category_js_start"])
    assert everyone["like_rate"] == pytest.approx(2 / 3)
    assert everyone["consumption_entropy"] == pytest.approx(entropy_bits(np.array([2, 1])))
    assert female["intra_list_distance"] == pytest.approx(1.0) and male["intra_list_distance"] == pytest.approx(0.0)
    assert everyone["exposure_gini"] == pytest.approx(gini(np.array([2, 1, 1])))
    assert everyone["agents"] == 2 and female["agents"] == 1
    stream = tracker.stream_frame()
    assert stream.set_index("category")["clicks"].to_dict() == {"A": 2, "B": 1}

    restored = DriftTracker(tracker.labels, tracker.primary, tracker.vectors, tracker.categories)
    restored.restore(tracker.state())
    pd.testing.assert_frame_equal(restored.frame(), tracker.frame())
    headline = drift_headline(tracker.frame())
    assert headline["final_centroid_shift"] == pytest.approx(0.5)
    assert headline["final_filter_bubble"] == pytest.approx(0.5)
