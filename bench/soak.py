"""Soak: a long run, sampled every step, to show flat memory and no growth in open files or threads.

Runs the quick start scenario with ``--agents`` agents for ``--steps`` steps and samples, after every step,
the resident memory of the run process and of its memory-writer processes, its open file descriptors and
its threads (from /proc). Prints the first, last and peak figures and the growth over the second half of
the run (a leak grows there; warm-up does not), and writes every sample to ``--csv``.

Usage: python bench/soak.py [--agents 1000] [--steps 500] [--csv soak.csv]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pandas as pd

from tastesim.runs.simulate import run_simulation
from tastesim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb(pid: int | str = "self") -> float:
    """Resident set size of a process, in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def sample(step: int, started: float) -> dict:
    """One row of figures for the run process and its children."""
    children = multiprocessing.active_children()
    return {
        "step": step,
        "seconds": round(time.perf_counter() - started, 2),
        "rss_mb": round(_rss_mb(), 1),
        "writers_rss_mb": round(sum(_rss_mb(c.pid) for c in children), 1),
        "open_files": len(os.listdir("/proc/self/fd")),
        "threads": len(os.listdir("/proc/self/task")),
        "child_processes": len(children),
    }


def main() -> None:
    """Run, sample, summarise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--csv", type=Path, default=Path("soak.csv"))
    args = parser.parse_args()
    quickstart = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    scenario = quickstart.model_copy(
        update={
            "name": "soak",
            "steps": args.steps,
            "population": quickstart.population.model_copy(update={"users": args.agents}),
            "memory": quickstart.memory.model_copy(update={"checkpoint_every": 10}),
        }
    )
    rows: list[dict] = []
    started = time.perf_counter()

    def progress(phase: str, done: int, _total: int) -> None:
        if phase == "simulating":
            rows.append(sample(done, started))

    with tempfile.TemporaryDirectory(prefix="tastesim-soak-") as tmp:
        run_simulation(scenario, Path(tmp) / "run", progress=progress)
    frame = pd.DataFrame(rows)
    frame.to_csv(args.csv, index=False)
    half = frame[frame["step"] > args.steps // 2]
    for column in ("rss_mb", "writers_rss_mb", "open_files", "threads", "child_processes"):
        growth = half[column].iloc[-1] - half[column].iloc[0]
        print(
            f"{column:>16}: first {frame[column].iloc[0]:>8} last {frame[column].iloc[-1]:>8} "
            f"peak {frame[column].max():>8} growth over the second half {growth:+.1f}"
        )
    print(f"{args.agents} agents x {args.steps} steps in {frame['seconds'].iloc[-1]:.0f} s; samples in {args.csv}")


if __name__ == "__main__":
    main()
