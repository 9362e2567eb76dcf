"""Step throughput with memory persistence on: wall time, decisions/s, peak RAM and store size per population.

Runs the quick start scenario, then each ``--agents`` population (ML-100K users resampled) for ``--steps``
steps against the popularity recommender, each in a fresh child process (so peak RAM is that run's) into a
fresh temporary folder, and prints one row per run. Wall time includes the final flush: every memory is
persisted when a run's clock stops. The seed store (every real user's seeded memories, shared by all runs)
is built once in a cache folder of its own before the first measured run, and its size is reported beside
the run store's.

Columns: ``wall`` (whole run: setup, stepping, final flush, outputs), ``setup``, ``steps`` (step compute,
store writes excluded: the writers work behind the simulation, in other processes), ``decisions/s`` (step
compute), ``agent-steps/s`` (wall), ``flush`` (final flush), ``peak RSS`` of the simulation process and of
the largest writer process, records in the run store, memories (seeded plus formed), bytes on disk of the
run store and the seed store, and the write rate of the busiest writer (records per second of writing).

Usage: python bench/step_throughput.py [--agents 1000 10000] [--steps 20] [--shards 1 2] [--no-quickstart]
                                       [--engine local|ray] [--workers N]
(``--shards`` repeats each population size with each store shard count: one writer process per shard.)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def _measure(scenario_json: str, cache: str, conn) -> None:
    """In a child process: run the scenario and send back its figures."""
    from tastesim.runs.simulate import run_simulation
    from tastesim.scenario import Scenario

    scenario = Scenario.model_validate_json(scenario_json).model_copy(update={"cache_dir": Path(cache)})
    with tempfile.TemporaryDirectory(prefix="tastesim-bench-") as tmp:
        started = time.perf_counter()
        summary = run_simulation(scenario, Path(tmp) / "run").summary
        wall = time.perf_counter() - started
        run_store = _bytes(Path(tmp) / "run" / "memory") + _bytes(Path(tmp) / "run" / "memory-index")
    seed_store = _bytes(Path(cache) / "seed-memories")
    conn.send(
        {
            "summary": summary,
            "wall": wall,
            "rss_main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "rss_child": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
            "run_store_bytes": run_store,
            "seed_store_bytes": seed_store,
        }
    )


def measure(label: str, scenario, cache: Path) -> dict:
    """Run one scenario in a child process and print its row."""
    ctx = mp.get_context("spawn")
    reader, writer = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_measure, args=(scenario.model_dump_json(), str(cache), writer))
    child.start()
    writer.close()
    got = reader.recv()
    child.join()
    s, t = got["summary"], got["summary"]["timing"]
    agent_steps = s["agents"] * s["steps"]
    rate = t["records_written_this_session"] / t["store_write_seconds"] if t["store_write_seconds"] else 0
    mb = 1 << 20
    print(
        f"{label:<18} engine={s['engine']}/{s['workers']} shards={scenario.memory.shards} agents={s['agents']:>6} "
        f"steps={s['steps']:>3} wall={got['wall']:7.1f}s setup={t['setup_seconds']:5.1f}s "
        f"step_compute={t['step_seconds']:6.1f}s decisions/s(step compute)={t['decisions_per_second']:>9.0f} "
        f"agent-steps/s(wall)={agent_steps / got['wall']:8.0f} flush={t['final_flush_seconds']:5.1f}s "
        f"outputs={t['outputs_seconds']:5.1f}s peak_rss_main={got['rss_main'] / mb:6.0f}MB "
        f"peak_rss_writer={got['rss_child'] / mb:5.0f}MB run_store_records={s['memory']['run_store_records']:>8} "
        f"memories={s['memory_records']:>8} run_store={got['run_store_bytes'] / mb:7.1f}MB "
        f"seed_store={got['seed_store_bytes'] / mb:5.1f}MB write_rate={rate:6.0f}rec/s",
        flush=True,
    )
    return got


def main() -> None:
    """Quick start, then each population size."""
    from tastesim.scenario import load_scenario

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--shards", type=int, nargs="*", default=[], help="default: the scenario's")
    parser.add_argument("--engine", choices=["local", "ray"], default="local")
    parser.add_argument("--workers", type=int, default=1, help="population shards (ray: actors)")
    parser.add_argument("--no-quickstart", action="store_true", help="skip the quick start row")
    args = parser.parse_args()
    quickstart = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    execution = quickstart.execution.model_copy(update={"engine": args.engine, "workers": args.workers})
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    with tempfile.TemporaryDirectory(prefix="tastesim-bench-cache-") as tmp:
        cache = Path(tmp)
        for folder in ("profiles", "embeddings", "decision-models", "models"):  # the default cache's trained parts
            source = Path(os.environ.get("TASTESIM_CACHE", Path.home() / ".cache" / "tastesim")) / folder
            if source.exists():
                (cache / folder).symlink_to(source, target_is_directory=True)
        warm = quickstart.model_copy(update={"name": "bench-warm", "steps": 1})
        measure("(seed store built)", warm, cache)
        if not args.no_quickstart:
            measure("quickstart (warm)", quickstart.model_copy(update={"execution": execution}), cache)
        for n in args.agents:
            for shards in args.shards or [quickstart.memory.shards]:
                scenario = quickstart.model_copy(
                    update={
                        "name": f"bench{n}",
                        "steps": args.steps,
                        "population": quickstart.population.model_copy(update={"users": n}),
                        "memory": quickstart.memory.model_copy(update={"shards": shards}),
                        "execution": execution,
                    }
                )
                measure(f"{n} agents", scenario, cache)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)


if __name__ == "__main__":
    main()
