"""``tastesim eval fidelity`` on a small generic-format dataset written here from real ML-100K rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tastesim.cli import app
from tastesim.eval.fidelity import COMPONENTS, RATIOS, pick_rate
from tastesim.eval.metrics import auc, best_threshold, classification

runner = CliRunner()


@pytest.fixture(scope="module")
def generic_dir(ml100k, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 real users in tastesim's generic CSV format (interactions.csv, items.csv)."""
    folder = tmp_path_factory.mktemp("generic")
    users = sorted(ml100k.interactions["user"].unique(), key=int)[:80]
    inter = ml100k.interactions[ml100k.interactions["user"].isin(users)]
    inter.to_csv(folder / "interactions.csv", index=False, columns=["user", "item", "rating", "timestamp"])
    items = ml100k.items[ml100k.items["item"].isin(set(inter["item"]))].copy()
    items["categories"] = items["categories"].map("|".join)
    items.to_csv(folder / "items.csv", index=False, columns=["item", "title", "categories", "text"])
    return folder


def _evaluate(generic_dir: Path, out: Path, cache: Path) -> dict:
    args = ["eval", "fidelity", "--data-dir", str(generic_dir), "--out", str(out), "--embedder", "hashing"]
    result = runner.invoke(app, [*args, "--stat-epochs", "3", "--cache-dir", str(cache), "--seed", "2"])
    assert result.exit_code == 0, result.output
    return json.loads((out / "fidelity.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def report(generic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("fidelity")
    return _evaluate(generic_dir, out, tmp_path_factory.mktemp("cache")), out


def test_report_names_every_component_protocol_and_metric(report: tuple[dict, Path]) -> None:
    data, out = report
    for name in COMPONENTS:
        for metric in ("auc", "balanced_accuracy", "f1_like", "f1_dislike"):
            assert 0 <= data[f"{name}.{metric}"] <= 1, (name, metric)
        for ratio in RATIOS:
            for metric in ("accuracy", "precision", "recall", "f1", "pick"):
                assert 0 <= data[f"{name}.discrimination.1_{ratio}.{metric}"] <= 1, (name, ratio, metric)
    assert data["published"]["simuser_movielens.discrimination.1_1.accuracy"] == 0.791
    assert data["facts"]["test_ratings"] > 0
    text = (out / "fidelity.md").read_text(encoding="utf-8")
    assert "| distilled |" in text and "Discrimination 1:9" in text and "bias (baseline)" in text


def test_ensembles_beat_chance_at_telling_rated_from_never_rated(report: tuple[dict, Path]) -> None:
    data, _ = report
    for name in ("learned", "distilled", "popularity"):  # statistical: 3 epochs here, see test_statistical
        assert data[f"{name}.discrimination.1_1.auc"] > 0.6, name


def test_seeded_evaluations_are_identical(report: tuple[dict, Path], generic_dir: Path, tmp_path: Path) -> None:
    data, _ = report
    again = _evaluate(generic_dir, tmp_path / "again", tmp_path / "cache")
    assert {k: v for k, v in again.items() if k != "command"} == {k: v for k, v in data.items() if k != "command"}


@pytest.mark.parametrize(
    "args",
    [
        ["eval", "fidelity", "--out", "x"],
        ["eval", "fidelity", "--out", "x", "--dataset", "ml-100k", "--data-dir", "."],
        ["eval", "fidelity", "--out", "x", "--dataset", "nope"],
    ],
)
def test_user_mistakes_exit_2_with_one_message(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_metrics_on_hand_made_scores() -> None:
    labels = np.array([True, True, False, False])
    assert auc(np.array([0.9, 0.8, 0.1, 0.2]), labels) == 1.0
    assert auc(np.array([0.5, 0.5, 0.5, 0.5]), labels) == 0.5
    got = classification(np.array([True, False, False, False]), labels)
    assert got["precision"] == 1.0 and got["recall"] == 0.5 and got["accuracy"] == 0.75
    assert got["balanced_accuracy"] == 0.75
    assert best_threshold(np.array([0.9, 0.8, 0.1, 0.2]), labels, "accuracy") >= 0.2
    assert pick_rate(np.array([[3.0, 1.0], [1.0, 2.0], [1.0, 1.0]])) == pytest.approx(0.5)
