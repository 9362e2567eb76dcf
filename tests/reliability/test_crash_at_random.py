"""Crash anywhere, at random times: five SIGKILLs of a run (with its writers) at seeded random moments, each once
the run or its resume has written a new step; the folder then ends as the uninterrupted run. (Named moments:
``test_crash_anywhere.py``; a file of its own so that the two suites run on different test workers.)
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
from test_crash_anywhere import FIELDS, _assert_same_as, _finish, _run, reference  # noqa: F401 (a fixture)

from helpers import write_scenario

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _wrote_a_step_since(out: Path, started: float) -> bool:
    try:
        return any(p.stat().st_mtime > started for p in (out / "parts").glob("step-*.parquet"))
    except FileNotFoundError:  # a part renamed or deleted while we looked
        return False


def test_killed_at_random_times_ends_as_the_uninterrupted_run(
    tmp_path: Path,
    cache_dir: Path,
    reference: Path,  # noqa: F811 (the fixture imported above)
) -> None:
    """Five kills at seeded random times, each once the run (or its resume) has written a new step."""
    scenario = write_scenario(tmp_path / "cfg", cache_dir, **FIELDS)
    out = tmp_path / "run"
    draw = random.Random(20261203)
    kills = 0
    for attempt in range(5):
        args = ["run", str(scenario), "--out", str(out)] if attempt == 0 else ["run", str(out), "--resume"]
        started = time.time()
        proc = _run(args, None)
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline and not _wrote_a_step_since(out, started):
            time.sleep(0.01)
        time.sleep(draw.uniform(0.0, 0.6))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        if (out / "summary.json").exists():
            break
    assert kills >= 3, f"only {kills} of the random kills landed before the run ended"
    if not (out / "summary.json").exists():
        _finish(out)
    _assert_same_as(out, reference)
