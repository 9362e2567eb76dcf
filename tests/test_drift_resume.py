"""Drift state survives a checkpoint: a run extended by resuming ends exactly where a straight run does."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tastesim.runs.simulate import run_simulation
from tastesim.scenario import load_scenario


@pytest.mark.slow
def test_resumed_run_reproduces_drift_exactly(slice_dir: Path, tmp_path: Path) -> None:
    data = {
        "name": "resume-drift",
        "seed": 9,
        "steps": 4,
        "population": {"users": 12},
        "dataset": {"path": str(slice_dir), "name": "ml-100k-slice"},
        "analyser": {"embedder": "hashing"},
        "memory": {"checkpoint_every": 2},
        "recommender": {"name": "diverse"},
        "cache_dir": str(tmp_path / "cache"),
        "shocks": [{"kind": "perturb", "step": 3, "segment": {"gender": "F"}, "toward": "Comedy"}],
    }
    straight = tmp_path / "straight.yaml"
    straight.write_text(yaml.safe_dump(data), encoding="utf-8")
    reference = run_simulation(load_scenario(straight), tmp_path / "reference").folder

    # Stop after the step-2 checkpoint, then extend the same folder to 4 steps by resuming.
    short = tmp_path / "short.yaml"
    short.write_text(yaml.safe_dump({**data, "steps": 2}), encoding="utf-8")
    out = run_simulation(load_scenario(short), tmp_path / "resumed").folder
    resolved = yaml.safe_load((out / "scenario.yaml").read_text(encoding="utf-8"))
    (out / "scenario.yaml").write_text(yaml.safe_dump({**resolved, "steps": 4}), encoding="utf-8")
    run_simulation(None, out, resume=True)

    for name in ("metrics.parquet", "interactions.parquet", "drift.parquet", "categories.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / name), pd.read_parquet(reference / name))
