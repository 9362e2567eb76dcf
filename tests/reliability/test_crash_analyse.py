"""``tastesim analyze`` killed with SIGKILL again and again, at named moments: right after a reply is committed
to the reply cache and while the output file is being written. The cache stays consistent, no committed reply
is asked for again, the output is never half-written, and the last run writes exactly the profiles of an
uninterrupted one. The LLM is a deterministic Ollama-API stub on loopback, reached through the real
``ChatOllama`` client.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import CLI, serve_in_thread
from tastesim.faults import CRASH_ENV
from test_llm_faults import GOOD, _StubServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ITEMS = 12
CONCURRENCY = 2  # the ollama backend's default requests in flight: at most this many replies die with a run


@pytest.fixture
def llm() -> Iterator[_StubServer]:
    server = _StubServer("ok", GOOD)
    with serve_in_thread(server):
        yield server


def _analyse(slice_dir: Path, url: str, cache: Path, out: Path, crash_at: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV} | ({CRASH_ENV: crash_at} if crash_at else {})
    args = ["analyze", "--dataset", str(slice_dir), "--backend", "ollama", "--model", "m", "--base-url", url]
    args += ["--limit", str(ITEMS), "--cache-dir", str(cache), "--out", str(out)]
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=300, start_new_session=True, check=False
    )


def test_analyse_killed_at_named_moments_resumes_from_its_cache_and_writes_the_same_profiles(
    slice_dir: Path, tmp_path: Path, llm: _StubServer
) -> None:
    reference = tmp_path / "reference.jsonl"
    done = _analyse(slice_dir, llm.url, tmp_path / "cache-ref", reference, None)
    assert done.returncode == 0, done.stderr[-3000:]
    uninterrupted = llm.requests

    cache, out = tmp_path / "cache", tmp_path / "profiles.jsonl"
    llm.requests = 0
    for moment in ("llm-reply:4", "llm-reply:1", "llm-reply:6", "atomic-write:1"):
        killed = _analyse(slice_dir, llm.url, cache, out, moment)
        assert killed.returncode == -signal.SIGKILL, f"not killed at {moment}: {killed.stderr[-2000:]}"
        assert not out.exists()  # never a partial output: the file appears whole or not at all
        db = sqlite3.connect(cache / "llm-replies.sqlite")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
    done = _analyse(slice_dir, llm.url, cache, out, None)
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.read_text() == reference.read_text()
    # Every committed reply was reused: the kills cost at most the replies in flight when they landed.
    assert uninterrupted <= llm.requests <= uninterrupted + 3 * CONCURRENCY
