"""Step throughput with memory persistence on: agent-steps/s, decisions/s, Chroma records and write rate.

Runs the quick start scenario, then 1,000 and 10,000 agents (ML-100K users resampled) for 20 steps
against the popularity recommender, each into a fresh temporary folder, and prints one row per run.
Times include the final flush: every memory is persisted when a run's wall time stops. The write rate is
records written per second of writing by the busiest writer process (shards write in parallel).

Usage: python bench/step_throughput.py [--agents 1000 10000] [--steps 20] [--shards 1 2]
(``--shards`` repeats each population size with each store shard count: one writer process per shard.)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from tastesim.runs.simulate import run_simulation
from tastesim.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[1]


def measure(label: str, scenario: Scenario) -> None:
    """Run one scenario and print its figures."""
    with tempfile.TemporaryDirectory(prefix="tastesim-bench-") as tmp:
        started = time.perf_counter()
        summary = run_simulation(scenario, Path(tmp) / "run").summary
        wall = time.perf_counter() - started
    t = summary["timing"]
    agent_steps = summary["agents"] * summary["steps"]
    rate = t["records_written_this_session"] / t["store_write_seconds"] if t["store_write_seconds"] else 0
    print(
        f"{label:<18} shards={scenario.memory.shards} agents={summary['agents']:>6} steps={summary['steps']:>3} "
        f"wall={wall:7.1f}s "
        f"agent-steps/s(wall)={agent_steps / wall:9.0f} decisions/s(step compute)={t['decisions_per_second']:>10.0f} "
        f"decisions/s(wall)={summary['decisions'] / wall:9.0f} chroma_records={summary['memory_records']:>7} "
        f"records_written={t['records_written_this_session']:>7} "
        f"strength_updates={t['strength_updates_this_session']:>7} "
        f"write_rate={rate:6.0f} rec/s",
        flush=True,
    )


def main() -> None:
    """Quick start, then each population size."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--shards", type=int, nargs="*", default=[], help="default: the scenario's")
    args = parser.parse_args()
    quickstart = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    measure("quickstart (warm)", quickstart)
    for n in args.agents:
        for shards in args.shards or [quickstart.memory.shards]:
            measure(
                f"{n} agents",
                quickstart.model_copy(
                    update={
                        "name": f"bench{n}",
                        "steps": args.steps,
                        "population": quickstart.population.model_copy(update={"users": n}),
                        "memory": quickstart.memory.model_copy(update={"shards": shards}),
                    }
                ),
            )


if __name__ == "__main__":
    main()
