"""Sim-vs-real agreement: the offline metrics on hand-made slates, rank correlation, and
``tastesim eval agreement`` end to end on 80 real ML-100K users."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tastesim.cli import app
from tastesim.eval.agreement import hit_and_ndcg, rank_agreement

runner = CliRunner()


def test_hit_rate_and_ndcg_on_hand_made_slates() -> None:
    slates = np.array([[5, 1, 2], [7, 8, -1], [3, 4, 6]])
    relevant = [np.array([1]), np.array([9]), np.array([])]  # the third user has no held-out like
    hit, ndcg, users = hit_and_ndcg(slates, relevant)
    assert users == 2 and hit == 0.5
    assert ndcg == pytest.approx((1 / np.log2(3)) / 2)
    _, perfect, _ = hit_and_ndcg(np.array([[1, 2]]), [np.array([2, 1])])
    assert perfect == pytest.approx(1.0)


def test_rank_agreement_is_one_for_the_same_order_and_minus_one_reversed() -> None:
    real = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}
    assert rank_agreement(real, {"a": 1, "b": 2, "c": 5, "d": 9}) == pytest.approx((1.0, 1.0))
    assert rank_agreement(real, {"a": 9, "b": 5, "c": 2, "d": 1}) == pytest.approx((-1.0, -1.0))


@pytest.fixture(scope="module")
def generic_dir(ml100k, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("generic")
    users = sorted(ml100k.interactions["user"].unique(), key=int)[:80]
    inter = ml100k.interactions[ml100k.interactions["user"].isin(users)]
    inter.to_csv(folder / "interactions.csv", index=False, columns=["user", "item", "rating", "timestamp"])
    items = ml100k.items[ml100k.items["item"].isin(set(inter["item"]))].copy()
    items["categories"] = items["categories"].map("|".join)
    items.to_csv(folder / "items.csv", index=False, columns=["item", "title", "categories", "text"])
    return folder


@pytest.mark.slow
def test_agreement_ranks_every_recommender_both_ways(generic_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "agreement"
    args = ["eval", "agreement", "--data-dir", str(generic_dir), "--out", str(out), "--embedder", "hashing"]
    args += ["--recommenders", "random,popularity,itemknn,sasrec", "--steps", "2", "--stat-epochs", "2"]
    result = runner.invoke(app, [*args, "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "agreement.json").read_text(encoding="utf-8"))
    assert -1 <= data["kendall_tau"] <= 1 and -1 <= data["spearman"] <= 1
    rows = data["recommenders"]
    assert set(rows) == {"random", "popularity", "itemknn", "sasrec"}
    for row in rows.values():
        assert 0 <= row["real_hit_rate"] <= 1 and 0 <= row["real_ndcg"] <= 1
        assert row["sim_clicks_per_slate"] >= row["sim_likes_per_slate"] >= 0
    assert rows["random"]["real_ndcg"] < rows["popularity"]["real_ndcg"]  # real data tells them apart
    assert "| sasrec |" in (out / "agreement.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "extra", [["--recommenders", "random,oracle,mf"], ["--recommenders", "random,mf"], ["--steps", "0"]]
)
def test_agreement_mistakes_exit_2_with_one_message(extra: list[str], tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", "agreement", "--dataset", "ml-100k", "--out", str(tmp_path), *extra])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
