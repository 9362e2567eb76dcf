"""Helpers every test module shares: free loopback ports, servers started in a thread or a process, and
waiting until a server answers its health check. A server that does not come up fails the test (it is
never a skip: only a missing Ollama may skip)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from tastesim.rng import KeyedDraws, RowDraws

__all__ = [
    "CLI",
    "chroma_server",
    "chroma_server_process",
    "draws",
    "free_port",
    "refused_url",
    "run_small",
    "serve_in_thread",
    "started_process",
    "wait_until_healthy",
    "write_scenario",
]

CLI = (sys.executable, "-m", "tastesim.cli")  # the ``tastesim`` command of this interpreter


def draws(seed: int, rows: int) -> RowDraws:
    """Independent keyed draws for ``rows`` rows (row ``i`` keyed ``i``), as a decider receives them."""
    return KeyedDraws(seed).rows(np.arange(rows))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused_url(path: str = "/") -> str:
    """An address where a connection is refused: a free port nobody listens on."""
    return f"http://127.0.0.1:{free_port()}{path}"


def wait_until_healthy(
    url: str,
    *,
    timeout_s: float = 60.0,
    alive: Callable[[], bool] = lambda: True,
    why: Callable[[], str] = lambda: "",
    ok: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200,
) -> httpx.Response:
    """Poll ``url`` until ``ok(response)``; fail the test when ``alive()`` turns false or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not alive():
            pytest.fail(f"the server for {url} exited before answering: {why()}")
        try:
            response = httpx.get(url, timeout=2, trust_env=False)
            if ok(response):
                return response
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer within {timeout_s:g} s: {why()}")
        time.sleep(0.1)


@contextmanager
def started_process(
    args: Sequence[str], health_url: str, *, log: Path, timeout_s: float = 60.0, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """Start ``args`` (output to ``log``), wait until ``health_url`` answers, stop it on exit.

    A process that exits early or never answers fails the test, with the tail of its log.
    """
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen(list(args), stdout=out, stderr=subprocess.STDOUT, env=environment)
    try:
        wait_until_healthy(
            health_url,
            timeout_s=timeout_s,
            alive=lambda: proc.poll() is None,
            why=lambda: log.read_text(errors="replace")[-1500:],
        )
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def serve_in_thread(server: object) -> Iterator[object]:
    """Run a ``socketserver``-style server (``serve_forever``/``shutdown``/``server_close``) in a thread."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)  # type: ignore[attr-defined]
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()  # type: ignore[attr-defined]
        server.server_close()  # type: ignore[attr-defined]
        thread.join(timeout=10)


@contextmanager
def chroma_server(folder: Path, *, timeout_s: float = 60.0, port: int | None = None) -> Iterator[str]:
    """A real ``chroma run`` on a free loopback port, its data and log in ``folder``; yields its URL.

    Skips only when chromadb's ``chroma`` executable is missing; a server that does not start fails.
    """
    with chroma_server_process(folder, timeout_s=timeout_s, port=port) as (url, _):
        yield url


@contextmanager
def chroma_server_process(
    folder: Path, *, timeout_s: float = 60.0, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """:func:`chroma_server`, yielding its URL and its process (to kill or pause it); ``port`` reuses one."""
    exe = Path(sys.executable).with_name("chroma")
    found = str(exe) if exe.exists() else shutil.which("chroma")
    if found is None:
        pytest.skip("the `chroma` executable (chromadb's CLI) is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    args = [found, "run", "--path", str(folder / "data"), "--port", str(port), "--host", "127.0.0.1"]
    with started_process(args, f"{url}/api/v2/heartbeat", log=folder / "chroma.log", timeout_s=timeout_s) as proc:
        yield url, proc


def write_scenario(folder: Path, cache_dir: Path, **fields: object) -> Path:
    """A small ML-100K scenario file with ``fields`` merged over the defaults."""
    data: dict = {
        "name": "small",
        "seed": 0,  # the default seed: the one decision model the gym environment without arguments uses too
        "steps": 6,
        "population": {"users": 120},
        "memory": {"checkpoint_every": 2},
        "recommender": {"name": "itemknn"},
        "cache_dir": str(cache_dir),
    }
    for key, value in fields.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and key in data else value
    path = folder / "scenario.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def run_small(tmp_path: Path, cache_dir: Path, name: str = "run", **fields: object) -> Path:
    """Run the small scenario of :func:`write_scenario` (``fields`` merged over it) into ``tmp_path/name``."""
    from tastesim.runs.simulate import run_simulation
    from tastesim.scenario import load_scenario

    scenario = load_scenario(write_scenario(tmp_path / f"{name}-cfg", cache_dir, **fields))
    return run_simulation(scenario, tmp_path / name).folder
