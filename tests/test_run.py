"""Whole runs on real ML-100K users: outputs, determinism, store consistency, resume after kill -9."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import chroma_server, run_small, write_scenario
from tastesim.memory.store import ShardedStore, record_id
from tastesim.memory.view import MemoryView, parse_record_id
from tastesim.runs.outcome import RunError
from tastesim.runs.simulate import checkpoint_memory, run_simulation
from tastesim.scenario import load_scenario
from tastesim.world.build import store_spec
from tastesim.world.metrics import METRICS
from tastesim.world.model import TasteModel


@pytest.mark.slow
def test_small_run_writes_a_complete_output_folder(tmp_path: Path, cache_dir: Path) -> None:
    out = run_small(tmp_path, cache_dir)
    for name in ("scenario.yaml", "profiles.jsonl", "metrics.parquet", "interactions.parquet", "summary.json"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == [
        "coverage.png",
        "diversity.png",
        "memory.png",
        "rates.png",
    ]
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert list(metrics["step"]) == [1, 2, 3, 4, 5, 6]
    assert set(METRICS) <= set(metrics.columns)
    assert (metrics["active_agents"] == 120).all()
    assert ((metrics["click_rate"] >= 0) & (metrics["click_rate"] <= 1)).all()
    interactions = pd.read_parquet(out / "interactions.parquet")
    assert len(interactions) == metrics["shown"].sum()
    assert interactions["click"].sum() == metrics["clicks"].sum()
    assert (interactions["like"] & interactions["dislike"]).sum() == 0
    assert (interactions["like"] <= interactions["click"]).all()
    # No agent is ever shown an item it consumed before (repeats are off by default).
    shown_twice = interactions[interactions["click"]].duplicated(["agent", "item"]).sum()
    assert shown_twice == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["agents"] == 120 and summary["steps"] == 6
    assert summary["decisions"] == len(interactions)
    resolved = yaml.safe_load((out / "scenario.yaml").read_text())
    assert resolved["population"]["users"] == 120 and resolved["seed"] == 0


def _store(out: Path) -> MemoryView:
    view = store_spec(load_scenario(out / "scenario.yaml"), out).open()
    assert isinstance(view, MemoryView)
    return view


def assert_store_holds_every_working_memory(out: Path, shards: int = 2) -> None:
    """The store of the run in ``out`` holds every working memory of its last checkpoint, and recalls them:
    each memory is found through the run store, then the seed store, with its latest strength."""
    memory = checkpoint_memory(out)
    reason, polarity, strength = memory.reason, memory.polarity, memory.strength
    store = _store(out)
    assert isinstance(store.run, ShardedStore) and len(store.run.shards) == shards  # one writer process each
    records = {r.id: r for r in store.get()}
    summary = json.loads((out / "summary.json").read_text())
    assert store.count() == len(records) == summary["memory_records"]
    held = np.argwhere(reason >= 0)
    assert len(held) > len(reason) * 5
    kinds = set()
    for agent, slot in held:
        key = (int(agent), int(reason[agent, slot]), int(polarity[agent, slot]))
        record = records[record_id(*key)]
        assert record.agent_id == agent
        assert record.strength == pytest.approx(float(strength[agent, slot]), rel=1e-6)
        location = store.locate(*key)
        assert location is not None
        kinds.add(location.store)
        if location.store == "run":
            assert location.id == record.id and location.shard == agent % shards
    assert kinds == {"run", "seed"}  # seeded memories stay in the shared seed store
    # Recall through Chroma with filters returns only that agent's memories of that polarity, seeds included.
    agent = int(held[0][0])
    probe = store.get(agent_id=agent, polarity="like", limit=1)[0]
    assert len(store.get(agent_id=agent)) == len([r for r in records.values() if r.agent_id == agent])
    _, _, probe_reason, probe_polarity = parse_record_id(probe.id)
    location = store.locate(agent, probe_reason, probe_polarity)
    assert location is not None
    _, vector = store.read(location)
    recalled = store.recall(vector, agent_id=agent, k=3, polarity="like")
    assert recalled[0].id == probe.id
    assert all(r.agent_id == agent and r.polarity == "like" for r in recalled)


@pytest.mark.slow
def test_store_holds_every_working_memory(tmp_path: Path, cache_dir: Path) -> None:
    assert_store_holds_every_working_memory(run_small(tmp_path, cache_dir))


@pytest.mark.slow
def test_same_seed_gives_identical_metrics_and_interactions(tmp_path: Path, cache_dir: Path) -> None:
    first = run_small(tmp_path, cache_dir, name="a")
    second = run_small(tmp_path, cache_dir, name="b")
    pd.testing.assert_frame_equal(
        pd.read_parquet(first / "metrics.parquet"), pd.read_parquet(second / "metrics.parquet")
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(first / "interactions.parquet"), pd.read_parquet(second / "interactions.parquet")
    )
    other = run_small(tmp_path, cache_dir, name="c", seed=8)
    assert not pd.read_parquet(other / "interactions.parquet").equals(pd.read_parquet(first / "interactions.parquet"))


def test_new_run_refuses_a_folder_holding_a_run(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "scenario.yaml").write_text("name: x\n")
    scenario = load_scenario(write_scenario(tmp_path / "cfg", cache_dir))
    with pytest.raises(RunError, match="already holds a run"):
        run_simulation(scenario, tmp_path / "busy")
    with pytest.raises(RunError, match="no run to resume"):
        run_simulation(None, tmp_path / "nothing", resume=True)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tastesim.cli", *args]


ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@contextmanager
def _started(
    scenario: Path, out: Path, *, until: str, output: int | None = subprocess.DEVNULL
) -> Iterator[subprocess.Popen]:
    """``tastesim run`` in a session of its own, given once it has written ``out/parts/<until>``.

    A run still going when the block ends (a test failed) is killed with its process group.
    """
    proc = subprocess.Popen(
        _cli("run", str(scenario), "--out", str(out)),
        env=ENV,
        start_new_session=True,
        stdout=output,
        stderr=output,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (out / "parts" / until).exists():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.005)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _killed(proc: subprocess.Popen, out: Path, checkpoints: tuple[int, ...]) -> None:
    """Kill the run and its memory writer processes, mid-step; its last checkpoint is one of ``checkpoints``."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "summary.json").exists()
    with np.load(out / "checkpoint.npz") as state:
        assert int(state["steps"]) in checkpoints


def _resume(out: Path) -> None:
    resumed = subprocess.run(
        _cli("run", str(out), "--resume"), env=ENV, capture_output=True, text=True, timeout=300, check=False
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]


def _assert_same_run(out: Path, reference: Path) -> None:
    """Same metrics, interactions and stored strengths as the reference run."""
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "metrics.parquet"), pd.read_parquet(reference / "metrics.parquet")
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "interactions.parquet"), pd.read_parquet(reference / "interactions.parquet")
    )
    ours = {r.id: r.strength for r in _store(out).get()}
    theirs = {r.id: r.strength for r in _store(reference).get()}
    assert ours == theirs


def _one_error_line(stdout: str, stderr: str) -> str:
    """The run's single user-error line; there is no traceback anywhere."""
    assert "Traceback" not in stdout + stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "recommender",
    [{"name": "itemknn"}, {"name": "mf", "factors": 16, "retrain_every": 3}],
    ids=["static-itemknn", "retrained-mf"],
)
def test_resume_after_kill_minus_nine_matches_an_uninterrupted_run(
    tmp_path: Path, cache_dir: Path, recommender: dict
) -> None:
    """Killed between checkpoints (step 4 or 8) and resumed: the same metrics, interactions and store; a
    recommender retrained every 3 steps is refitted at resume exactly as it was (at step 3 or 6)."""
    fields = {"steps": 12, "population": {"users": 400}, "memory": {"checkpoint_every": 4}, "recommender": recommender}
    reference = run_small(tmp_path, cache_dir, name="reference", **fields)
    out = tmp_path / "killed"
    with _started(
        write_scenario(tmp_path / "killed-cfg", cache_dir, **fields), out, until="step-000006.parquet"
    ) as proc:
        _killed(proc, out, checkpoints=(4, 8))
    _resume(out)
    _assert_same_run(out, reference)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_run_on_a_chroma_server_writes_recalls_and_resumes_after_kill_minus_nine(
    tmp_path: Path, cache_dir: Path
) -> None:
    with chroma_server(tmp_path / "chroma") as url:
        fields = {"steps": 6, "population": {"users": 150}, "memory": {"checkpoint_every": 2, "server": url}}
        # Both runs write to the one server: their names keep their collections apart.
        scenario = load_scenario(write_scenario(tmp_path / "reference-cfg", cache_dir, name="server-ref", **fields))
        reference = run_simulation(scenario, tmp_path / "reference").folder
        assert not (reference / "memory").exists()  # nothing embedded: the store is on the server
        out = tmp_path / "killed"
        killed = write_scenario(tmp_path / "killed-cfg", cache_dir, name="server-killed", **fields)
        with _started(killed, out, until="step-000003.parquet") as proc:
            _killed(proc, out, checkpoints=(2,))
        _resume(out)
        _assert_same_run(out, reference)
        assert_store_holds_every_working_memory(out)


@pytest.mark.slow
def test_a_step_that_fails_stops_the_writers_and_the_folder_resumes(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = TasteModel.step

    def interrupted(model: TasteModel) -> None:
        if model.steps == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the run, after the checkpoint at step 2
        step(model)

    monkeypatch.setattr(TasteModel, "step", interrupted)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_simulation(load_scenario(write_scenario(tmp_path / "cfg", cache_dir)), out)
    assert not [p for p in mp.active_children() if p.name.startswith("memory-writer-")]
    monkeypatch.undo()
    run_simulation(None, out, resume=True)
    _assert_same_run(out, run_small(tmp_path, cache_dir, name="reference"))


def _writer_processes(pid: int) -> list[int]:
    """The memory writer processes of the run ``pid`` (its spawned children, not multiprocessing's tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        if parent == pid and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_killed_memory_writer_ends_the_run_with_one_message_and_it_resumes(tmp_path: Path, cache_dir: Path) -> None:
    fields = {"steps": 12, "population": {"users": 400}, "memory": {"checkpoint_every": 4}}
    out = tmp_path / "run"
    scenario = write_scenario(tmp_path / "cfg", cache_dir, **fields)
    with _started(scenario, out, until="step-000002.parquet", output=subprocess.PIPE) as proc:
        writers = _writer_processes(proc.pid)
        assert len(writers) == 2
        os.kill(writers[1], signal.SIGKILL)
        killed = time.monotonic()
        stdout, stderr = proc.communicate(timeout=60)  # it does not hang
    assert time.monotonic() - killed < 30
    assert proc.returncode == 2
    line = _one_error_line(stdout, stderr)
    assert "shard-1" in line and "the process ended unexpectedly (killed by SIGKILL)" in line
    assert f"`tastesim run {out} --resume`" in line
    assert not (out / "summary.json").exists()
    assert not Path(f"/proc/{writers[0]}").exists()  # the run stopped its other writer before it ended
    _resume(out)
    assert_store_holds_every_working_memory(out)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_store_that_cannot_be_written_ends_the_run_with_one_message(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "memory").write_text("a file where the store's folder should be")
    scenario = write_scenario(tmp_path / "cfg", cache_dir)
    started = time.monotonic()
    result = subprocess.run(
        _cli("run", str(scenario), "--out", str(out)), env=ENV, capture_output=True, text=True, timeout=100, check=False
    )
    assert time.monotonic() - started < 100
    assert result.returncode == 2, result.stderr[-3000:]
    line = _one_error_line(result.stdout, result.stderr)
    assert "opening the store failed" in line and f"`tastesim run {out} --resume`" in line
    log = (out / "memory-error.txt").read_text()
    assert "opening the store failed" in log and "Traceback" in log  # the writer's traceback is kept
    # Once the cause is fixed, the folder resumes.
    (out / "memory").unlink()
    _resume(out)
    assert_store_holds_every_working_memory(out)
