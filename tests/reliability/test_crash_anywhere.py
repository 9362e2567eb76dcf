"""Crash anywhere, lose nothing: a run killed with SIGKILL (with its memory writers: the whole process group,
as a power cut) at named moments and at random times, over and over, and resumed each time, ends exactly
as the uninterrupted run: metrics, interactions, every stored memory with its strength, the summary.

Named moments are crash points (``tastesim.faults``): ``TASTESIM_CRASH_AT=NAME:N`` kills the run at the N-th
time it reaches NAME: mid-step, inside an atomic write (the new file complete, not yet renamed), during a
Chroma flush in a writer process, between the shards' checkpoint and the driver's, while a resume rolls the
stores back, and while the final outputs are written. Each chain kills one folder several times in a row,
so recovery itself is also interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from helpers import CLI
from tastesim.faults import CRASH_ENV
from test_run import _store, run_small, write_scenario

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

FIELDS = {"steps": 8, "population": {"users": 150}, "memory": {"checkpoint_every": 2}}

# Each chain: the first entry kills the fresh run, the others each kill a resume of the same folder. The counts
# are within what the moment is certain to reach (a run of 8 steps checkpoints at 2, 4, 6 and 8; each of the two
# memory writers gets 4 batches per checkpoint interval).
CHAINS = {
    "memory-flushes": ["store-add:3", "store-add:6", "resume:1", "checkpoint-synced:1", "checkpoint-shards:1",
                       "store-add:2"],
    "checkpoint-writes": ["checkpoint-shards:2", "atomic-write:1", "step:2", "atomic-write:4", "checkpoint-synced:2"],
    "steps-and-outputs": ["step:5", "resume:1", "atomic-write:2", "outputs:1", "atomic-write:3", "atomic-write:6"],
    "mixed": ["atomic-write:9", "store-add:5", "step:3", "checkpoint-shards:1", "resume:1"],
}  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """The uninterrupted run."""
    return run_small(tmp_path_factory.mktemp("reference"), cache_dir, name="reference", **FIELDS)


def _run(args: list[str], crash_at: str | None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash_at is not None:
        env[CRASH_ENV] = crash_at
    return subprocess.Popen(
        [*CLI, *args], env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def _killed(proc: subprocess.Popen, moment: str) -> None:
    try:
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL, f"not killed at {moment} (exit {proc.returncode}): {stderr[-2000:]}"


def _finish(out: Path) -> None:
    proc = _run(["run", str(out), "--resume"], None)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]


def _records(out: Path) -> dict[str, tuple]:
    return {
        r.id: (r.text, r.agent_id, r.item_id, r.polarity, r.category, r.step, r.strength, r.last_step)
        for r in _store(out).get()
    }


def _summary(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("timing")
    summary.pop("shards")  # process usage (RSS, CPU seconds) differs between any two runs
    summary["memory"].pop("seed_records_written_this_session")  # the first session wrote the shared seed store
    return summary


def _assert_same_as(out: Path, reference: Path) -> None:
    for name in ("metrics.parquet", "interactions.parquet", "drift.parquet", "categories.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / name), pd.read_parquet(reference / name), obj=name)
    assert _records(out) == _records(reference)
    assert _summary(out) == _summary(reference)
    leftovers = [p.name for p in out.rglob("*.tmp*")]
    assert leftovers == [], f"temporary files left behind: {leftovers}"


@pytest.mark.parametrize("chain", list(CHAINS), ids=list(CHAINS))
def test_killed_at_named_moments_again_and_again_ends_as_the_uninterrupted_run(
    tmp_path: Path, cache_dir: Path, reference: Path, chain: str
) -> None:
    scenario = write_scenario(tmp_path / "cfg", cache_dir, **FIELDS)
    out = tmp_path / "run"
    first, *then = CHAINS[chain]
    _killed(_run(["run", str(scenario), "--out", str(out)], first), first)
    for moment in then:
        assert not (out / "summary.json").exists()
        _killed(_run(["run", str(out), "--resume"], moment), moment)
    _finish(out)
    _assert_same_as(out, reference)
