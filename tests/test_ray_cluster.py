"""The Ray engine on a cluster of several nodes (``ray.cluster_utils.Cluster`` simulates them on this machine):
shards spread over the nodes, reached through ``execution.address``, with the local engine's results."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from helpers import run_small
from tastesim.engine import build_shards
from tastesim.scenario import load_scenario
from tastesim.world.build import build_parts, load_scenario_dataset, profiles_for
from tastesim.world.drift_metrics import Groups, segment_labels

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
cluster_utils = pytest.importorskip("ray.cluster_utils")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """Two simulated nodes of one CPU each."""
    if ray.is_initialized():
        ray.shutdown()
    nodes = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    yield nodes
    if ray.is_initialized():
        ray.shutdown()
    nodes.shutdown()


@pytest.mark.timeout(600)
def test_shards_spread_over_the_nodes_and_give_the_local_result(
    cluster: object, tmp_path: Path, cache_dir: Path
) -> None:
    small = {"steps": 4, "population": {"users": 150}, "memory": {"checkpoint_every": 2}}
    remote = {**small, "execution": {"engine": "ray", "workers": 2, "address": cluster.address}}  # type: ignore[attr-defined]
    out = run_small(tmp_path, cache_dir, name="cluster", **remote)
    local = run_small(tmp_path, cache_dir, name="local", **small)
    for name in ("metrics.parquet", "interactions.parquet", "drift.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / name), pd.read_parquet(local / name), check_exact=True)
    # Where the two shards' actors live: one on each node.
    scenario = load_scenario(out / "scenario.yaml")
    dataset = load_scenario_dataset(scenario)
    parts = build_parts(scenario, dataset, profiles_for(dataset, scenario))
    groups = Groups.from_labels(segment_labels(parts.population, tuple(scenario.segments.by)), 150)
    shards = build_shards(scenario, parts, groups)
    try:
        assert len({node for node, _ in shards.places}) == 2  # type: ignore[attr-defined]
    finally:
        shards.shutdown()
