"""One population on the local engine and on Ray with 1 and 2 workers, in one run: wall time, agent-steps/s,
and whether every run's metrics, interactions and drift rows are identical to the local engine's.

With ``--cluster-nodes N`` it also runs the population on a Ray cluster of ``N`` simulated nodes
(``ray.cluster_utils.Cluster``, one CPU each, on this machine) with one worker per node, and checks the
scale projection: each worker's peak resident memory and CPU seconds against ``base + agents x per agent``,
fitted on the Ray runs of this node (1 and 2 workers, and 2 workers on a quarter of the agents; README
"Scale-out on Ray").

Each configuration runs in a fresh child process into its own folder; the seed store and trained models come
from the default cache (a first warm-up run builds what is missing).

Usage: python bench/ray_scaling.py [--agents 10000] [--steps 10] [--workers 1 2] [--cluster-nodes 0]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
COMPARED = ("metrics.parquet", "interactions.parquet", "drift.parquet", "categories.parquet")


def _child(scenario_json: str, out: str, nodes: int, conn) -> None:
    """In a child process: (start a simulated cluster,) run the scenario, send back its summary."""
    from tastesim.runs.simulate import run_simulation
    from tastesim.scenario import Scenario

    scenario = Scenario.model_validate_json(scenario_json)
    cluster = None
    if nodes:
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        execution = scenario.execution.model_copy(update={"address": cluster.address})
        scenario = scenario.model_copy(update={"execution": execution})
    try:
        started = time.perf_counter()
        summary = run_simulation(scenario, Path(out)).summary
        wall = time.perf_counter() - started
    finally:
        if cluster is not None:
            cluster.shutdown()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    conn.send({"summary": summary, "wall": wall, "driver_rss": rss})


def run(label: str, scenario, out: Path, nodes: int = 0) -> dict:
    """One configuration in a child process; prints its row."""
    ctx = mp.get_context("spawn")
    reader, writer = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(scenario.model_dump_json(), str(out), nodes, writer))
    child.start()
    writer.close()
    got = reader.recv()
    child.join()
    s, t = got["summary"], got["summary"]["timing"]
    agent_steps = s["agents"] * s["steps"]
    nodes_used = len({u["node"] for u in s["shards"]})
    print(
        f"{label:<22} agents={s['agents']:>7} steps={s['steps']:>3} wall={got['wall']:7.1f}s "
        f"setup={t['setup_seconds']:5.1f}s step_compute={t['step_seconds']:6.1f}s "
        f"agent-steps/s(wall)={agent_steps / got['wall']:8.0f} agent-steps/s(step compute)="
        f"{agent_steps / t['step_seconds']:8.0f} nodes={nodes_used} "
        f"worker_peak_rss={max(u['peak_rss_bytes'] for u in s['shards']) / 2**20:6.0f}MB",
        flush=True,
    )
    return got


def identical(out: Path, reference: Path) -> str:
    """``identical`` when every compared output equals the reference's exactly, else what differs."""
    differ = [name for name in COMPARED if not pd.read_parquet(out / name).equals(pd.read_parquet(reference / name))]
    return "identical" if not differ else "DIFFERENT: " + ", ".join(differ)


def main() -> None:
    """Local, then Ray with each worker count (then a simulated cluster), and the identical-metrics checks."""
    from tastesim.scenario import load_scenario

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=10000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--cluster-nodes", type=int, default=0, help="also run on N simulated Ray nodes")
    args = parser.parse_args()
    base = load_scenario(ROOT / "scenarios" / "quickstart.yaml")

    def scenario(name: str, agents: int, engine: str, workers: int):
        return base.model_copy(
            update={
                "name": name,
                "steps": args.steps,
                "population": base.population.model_copy(update={"users": agents}),
                "execution": base.execution.model_copy(update={"engine": engine, "workers": workers}),
            }
        )

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    with tempfile.TemporaryDirectory(prefix="tastesim-ray-scaling-") as tmp:
        folder = Path(tmp)
        run("warm-up (caches)", scenario("warm", 943, "local", 1).model_copy(update={"steps": 1}), folder / "warm")
        local = folder / "local"
        results = {"local": run("local", scenario("scale", args.agents, "local", 1), local)}
        for workers in args.workers:
            out = folder / f"ray{workers}"
            config = scenario("scale", args.agents, "ray", workers)
            results[f"ray{workers}"] = run(f"ray, {workers} worker(s)", config, out)
        if args.cluster_nodes:
            nodes = args.cluster_nodes
            out = folder / "cluster"
            results["cluster"] = run(
                f"ray, {nodes} sim. nodes", scenario("scale", args.agents, "ray", nodes), out, nodes=nodes
            )
        print("\nidentical-metrics checks (metrics, interactions, drift and category rows against the local engine):")
        for name in results:
            if name != "local":
                print(f"  {name:<10} {identical(folder / name, local)}")
        if args.cluster_nodes:
            project(results, folder, scenario, args)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)


def project(results: dict, folder: Path, scenario, args) -> None:
    """Fit each worker's peak RSS and CPU as ``base + agents x per agent`` on the Ray runs on this node (1 and
    2 workers, and 2 workers on a quarter of the agents), then compare with the simulated cluster's workers."""
    quarter = max(args.agents // 4, 100)
    small = run("ray, 2 workers (1/4)", scenario("quarter", quarter, "ray", 2), folder / "quarter")
    steps = results["local"]["summary"]["steps"]
    fitted = [s for r in (*(results[k] for k in results if k.startswith("ray")), small) for s in r["summary"]["shards"]]
    agents = np.array([s["agents"] for s in fitted], dtype=np.float64)
    rss_slope, rss_base = np.polyfit(agents, [s["peak_rss_bytes"] for s in fitted], 1)
    cpu_slope, cpu_base = np.polyfit(agents * steps, [s["cpu_seconds"] for s in fitted], 1)
    drivers = [(r["summary"]["agents"], r["driver_rss"]) for r in (results.get("ray2"), small) if r is not None]
    (a1, d1), (a0, d0) = drivers[0], drivers[-1]
    driver_slope = (d1 - d0) / (a1 - a0) if a1 != a0 else float("nan")
    state = np.mean([s["state_bytes"] / s["agents"] for s in fitted])
    print(
        f"\nper-agent costs of a Ray worker (fitted on {len(fitted)} workers of this node): peak RSS "
        f"{rss_base / 2**20:,.0f} MB + {rss_slope:,.0f} B/agent (its state arrays: {state:,.0f} B/agent); "
        f"CPU {cpu_base:.1f} s + {cpu_slope * 1e6:.1f} us per agent-step; driver {driver_slope:,.0f} B/agent"
    )
    print("projection check on the simulated cluster (one worker per node):")
    for shard in results["cluster"]["summary"]["shards"]:
        rss = rss_base + rss_slope * shard["agents"]
        cpu = cpu_base + cpu_slope * shard["agents"] * steps
        print(
            f"  node {shard['node'][:8]}: {shard['agents']} agents; peak RSS {shard['peak_rss_bytes'] / 2**20:,.0f} MB,"
            f" projected {rss / 2**20:,.0f} MB ({shard['peak_rss_bytes'] / rss - 1:+.0%}); CPU "
            f"{shard['cpu_seconds']:.1f} s, projected {cpu:.1f} s ({shard['cpu_seconds'] / cpu - 1:+.0%})"
        )
    costs = {
        "worker_base_bytes": rss_base,
        "worker_bytes_per_agent": rss_slope,
        "worker_cpu_base_seconds": cpu_base,
        "worker_cpu_seconds_per_agent_step": cpu_slope,
        "driver_bytes_per_agent": driver_slope,
    }
    print(json.dumps(costs))


if __name__ == "__main__":
    main()
