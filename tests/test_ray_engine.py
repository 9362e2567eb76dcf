"""The Ray engine on a real local Ray: same results as the local engine with any worker count, resume after
kill -9, a worker killed mid-run, and every shard writing to one real Chroma server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from helpers import chroma_server
from test_run import (
    _killed,
    _one_error_line,
    _resume,
    _started,
    _store,
    assert_store_holds_every_working_memory,
    run_small,
    write_scenario,
)

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

pytestmark = pytest.mark.slow  # a real Ray opens sockets

SMALL = {"steps": 6, "population": {"users": 150}, "memory": {"checkpoint_every": 2}}


def ray_fields(workers: int, **fields: object) -> dict:
    return {**SMALL, **fields, "execution": {"engine": "ray", "workers": workers}}


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray for the module's in-process runs (each run would otherwise start and stop its own)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _same_outputs(out: Path, reference: Path) -> None:
    for name in ("metrics.parquet", "interactions.parquet", "drift.parquet", "categories.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / name), pd.read_parquet(reference / name), check_exact=True)
    ours = {r.id: (r.strength, r.last_step, r.step) for r in _store(out).get()}
    theirs = {r.id: (r.strength, r.last_step, r.step) for r in _store(reference).get()}
    assert ours == theirs


def test_local_and_ray_with_one_and_two_workers_give_identical_runs(tmp_path: Path, cache_dir: Path) -> None:
    local = run_small(tmp_path, cache_dir, name="local", **SMALL)
    for workers in (1, 2):
        out = run_small(tmp_path, cache_dir, name=f"ray{workers}", **ray_fields(workers))
        summary = json.loads((out / "summary.json").read_text())
        assert (summary["engine"], summary["workers"]) == ("ray", workers)
        _same_outputs(out, local)
    # Two workers write two store shards, one each: every memory is found through them and the seed store.
    assert_store_holds_every_working_memory(tmp_path / "ray2", shards=2)


def _descendants(pid: int) -> dict[int, bytes]:
    """``{pid: command line}`` of every process below ``pid``."""
    children: dict[int, list[int]] = {}
    commands: dict[int, bytes] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            commands[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = {}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = commands.get(child, b"")
            todo.append(child)
    return found


def _stop_leftovers(pid: int) -> None:
    """Kill what a killed run left of its local Ray (its cluster processes are not in the run's group)."""
    for child in _descendants(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


@pytest.mark.timeout(600)
def test_a_ray_run_killed_with_kill_minus_nine_resumes_to_the_same_result(tmp_path: Path, cache_dir: Path) -> None:
    fields = ray_fields(2, steps=12, population={"users": 300}, memory={"checkpoint_every": 4})
    reference = run_small(tmp_path, cache_dir, name="reference", **fields)
    out = tmp_path / "killed"
    scenario = write_scenario(tmp_path / "killed-cfg", cache_dir, **fields)
    with _started(scenario, out, until="step-000006.parquet") as proc:
        pid = proc.pid
        _killed(proc, out, checkpoints=(4,))
    _stop_leftovers(pid)
    _resume(out)
    _same_outputs(out, reference)
    assert_store_holds_every_working_memory(out, shards=2)


@pytest.mark.timeout(600)
def test_a_killed_ray_worker_stops_the_run_with_a_message_and_it_resumes(tmp_path: Path, cache_dir: Path) -> None:
    fields = ray_fields(2, steps=12, population={"users": 300}, memory={"checkpoint_every": 4})
    out = tmp_path / "run"
    scenario = write_scenario(tmp_path / "cfg", cache_dir, **fields)
    with _started(scenario, out, until="step-000002.parquet", output=subprocess.PIPE) as proc:
        actors = [p for p, cmd in _descendants(proc.pid).items() if b"PopulationShardActor" in cmd]
        assert len(actors) == 2, "one Ray actor per population shard"
        os.kill(actors[1], signal.SIGKILL)
        killed = time.monotonic()
        stdout, stderr = proc.communicate(timeout=120)  # it does not hang
    assert time.monotonic() - killed < 90
    assert proc.returncode == 2, stderr[-3000:]
    line = _one_error_line(stdout, stderr)
    assert "population shard" in line and "its worker died" in line, line
    assert f"`tastesim run {out} --resume`" in line
    assert not (out / "summary.json").exists()
    _resume(out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 12 and summary["workers"] == 2
    assert_store_holds_every_working_memory(out, shards=2)


@pytest.mark.timeout(600)
def test_every_ray_shard_writes_to_one_chroma_server(tmp_path: Path, cache_dir: Path) -> None:
    with chroma_server(tmp_path / "chroma") as url:
        out = run_small(tmp_path, cache_dir, name="on-server", **ray_fields(2, memory={"server": url}))
        assert not (out / "memory").exists()  # the run store is two collections on the server
        view = _store(out)
        assert [s.collection_name for s in view.run.shards] == [
            "tastesim-small-shard-0",
            "tastesim-small-shard-1",
        ]
        assert view.seed is not None and view.seed.collection_name.startswith("tastesim-seed-")
        assert_store_holds_every_working_memory(out, shards=2)
