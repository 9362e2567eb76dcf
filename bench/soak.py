"""Soak: a long run, sampled every step, to show flat memory and no growth in open files or threads.

Runs the quick start scenario with ``--agents`` agents for ``--steps`` steps and samples, after every step,
the resident memory of the run process and of its memory-writer processes, its open file descriptors and
its threads (from /proc). Prints the first, last and peak figures and the growth over the second half of
the run (a leak grows there; warm-up does not), and writes every sample to ``--csv``.

Every ``--account-every`` steps it also accounts for the run process's memory: the C heap in use and the heap
freed but kept by the allocator (glibc ``mallinfo2``), and the bytes of the arrays each part of the model holds
(the population shards, the metrics, the drift rows, the feedback log, ...), so that growth can be attributed.

Usage: python bench/soak.py [--agents 1000] [--steps 500] [--csv soak.csv] [--account-every 50]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import multiprocessing
import os
import tempfile
import time
import types
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pandas as pd
import pyarrow as pa

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


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"
    )]  # fmt: skip


def _heap_mb() -> dict[str, float]:
    """glibc's heap: bytes in use (small blocks and mmapped ones) and freed bytes it keeps."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return {"heap_in_use_mb": (info.uordblks + info.hblkhd) / 2**20, "heap_free_mb": info.fordblks / 2**20}


# leaves, and what leads out of the model into the interpreter (modules, functions and their globals)
_SKIPPED = (
    str,
    bytes,
    int,
    float,
    type,
    types.ModuleType,
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
)


def _held_bytes(root: object, outside: object) -> int:
    """Bytes of the numpy arrays, Arrow buffers and pandas frames reachable from ``root`` without going
    through ``outside`` (each counted once)."""
    seen: set[int] = {id(outside)}
    total, stack = 0, [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _SKIPPED):
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            if obj.base is None:
                total += obj.nbytes
            else:
                stack.append(obj.base)
            continue
        if isinstance(obj, pd.DataFrame):
            total += int(obj.memory_usage(deep=True).sum())
            continue
        if isinstance(obj, pa.Table | pa.Array | pa.ChunkedArray):
            total += obj.nbytes
            continue
        stack.extend(gc.get_referents(obj))
    return total


def account(model: object) -> dict[str, float]:
    """The heap, and the array bytes held by each attribute of the model, in MB."""
    parts = {f"held_{name}_mb": _held_bytes(value, model) / 2**20 for name, value in vars(model).items()}
    return {**_heap_mb(), "arrow_pool_mb": pa.total_allocated_bytes() / 2**20, **parts}


def _the_model() -> object:
    from tastesim.world.model import TasteModel

    return next(o for o in gc.get_objects() if type(o) is TasteModel)  # isinstance would wake lazy modules


def main() -> None:
    """Run, sample, summarise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--csv", type=Path, default=Path("soak.csv"))
    parser.add_argument("--account-every", type=int, default=50, help="steps between memory accounts (0: none)")
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
            if args.account_every and (done == 1 or done % args.account_every == 0):
                rows[-1] |= account(_the_model())

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
    accounts = frame.dropna(axis=1, how="all").filter(regex="_mb$|^step$").dropna()
    if not accounts.empty:
        middle = accounts[accounts["step"] >= args.steps // 2].iloc[0]
        last = accounts.iloc[-1]
        print(f"memory account (MB) at step {int(middle['step'])} -> {int(last['step'])}:")
        for column in accounts.columns.drop("step"):
            change = last[column] - middle[column]
            if abs(change) >= 0.05 or column in ("rss_mb", "heap_in_use_mb", "heap_free_mb"):
                print(f"  {column:>34}: {middle[column]:9.1f} -> {last[column]:9.1f} ({change:+.1f})")
    print(f"{args.agents} agents x {args.steps} steps in {frame['seconds'].iloc[-1]:.0f} s; samples in {args.csv}")


if __name__ == "__main__":
    main()
