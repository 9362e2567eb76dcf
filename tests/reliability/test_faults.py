"""Faults in what a run talks to and writes on: the Chroma server going down or stalling mid-run, and a full
disk. Each ends as survived (the run completes, equal to an undisturbed one) or as a clean stop: one message
saying what to do, and a folder that resumes to the undisturbed run's result once the fault is gone.
(CRS faults, slow-drip and oversized replies are in ``tests/contracts/test_crs_client_contract.py``; LLM
server timeouts, 500s and garbage in ``tests/test_llm_faults.py``.)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import CLI, chroma_server_process
from tastesim.runs.simulate import run_simulation
from tastesim.scenario import load_scenario
from test_run import _assert_same_run, _one_error_line, run_small, write_scenario

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

FIELDS = {"steps": 8, "population": {"users": 150}, "memory": {"checkpoint_every": 2}}


def _run(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, "run", *args], start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def _resumes(out: Path) -> None:
    done = subprocess.run([*CLI, "run", str(out), "--resume"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def _server_run_at_step_3(tmp_path: Path, cache_dir: Path, url: str, name: str) -> tuple[Path, Path, subprocess.Popen]:
    """The undisturbed run on the server at ``url`` (under another name: its collections apart), then the
    same run started as ``tastesim run`` and given once it has written step 3: (reference, out, process)."""
    fields = {**FIELDS, "memory": {**FIELDS["memory"], "server": url}}
    scenario = load_scenario(write_scenario(tmp_path / "reference-cfg", cache_dir, name=f"{name}-ref", **fields))
    reference = run_simulation(scenario, tmp_path / "reference").folder
    out = tmp_path / "run"
    proc = _run(str(write_scenario(tmp_path / "cfg", cache_dir, name=name, **fields)), "--out", str(out))
    _wait_for(out / "parts" / "step-000003.parquet", proc)
    return reference, out, proc


def test_a_chroma_server_that_goes_down_mid_run_stops_it_cleanly_and_it_resumes(
    tmp_path: Path, cache_dir: Path
) -> None:
    with chroma_server_process(tmp_path / "chroma") as (url, server):
        reference, out, proc = _server_run_at_step_3(tmp_path, cache_dir, url, "server-down")
        server.kill()  # the server is gone, mid-run
        server.wait()
        stdout, stderr = proc.communicate(timeout=180)  # the run does not hang
        assert proc.returncode == 2, stderr[-3000:]
        line = _one_error_line(stdout, stderr)
        assert f"`tastesim run {out} --resume`" in line
    with chroma_server_process(tmp_path / "chroma", port=int(url.rsplit(":", 1)[1])):  # back, with its data
        _resumes(out)
        _assert_same_run(out, reference)


def test_a_chroma_server_that_stalls_mid_run_is_waited_for(tmp_path: Path, cache_dir: Path) -> None:
    """The server frozen (SIGSTOP) for 5 s between checkpoints: the run waits, then ends as an undisturbed one."""
    with chroma_server_process(tmp_path / "chroma") as (url, server):
        reference, out, proc = _server_run_at_step_3(tmp_path, cache_dir, url, "stalled")
        os.kill(server.pid, signal.SIGSTOP)
        try:
            time.sleep(5)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
        _assert_same_run(out, reference)


@contextmanager
def _small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``folder`` (root only), unmounted at the end."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8); CI runs as root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=False)
    if mounted.returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_stops_the_run_with_one_message_and_it_resumes_once_there_is_space(
    tmp_path: Path, cache_dir: Path
) -> None:
    reference = run_small(tmp_path, cache_dir, name="reference", **FIELDS)
    scenario = write_scenario(tmp_path / "cfg", cache_dir, **FIELDS)
    with _small_disk(tmp_path / "disk", "4m") as disk:
        out = disk / "run"
        done = subprocess.run(
            [*CLI, "run", str(scenario), "--out", str(out)], capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 2, done.stderr[-3000:]
        line = _one_error_line(done.stdout, done.stderr)
        assert "space" in line or "disk is full" in line, line
        assert f"`tastesim run {out} --resume`" in line, line
        subprocess.run(["mount", "-o", "remount,size=256m", str(disk)], check=True)
        _resumes(out)
        _assert_same_run(out, reference)
