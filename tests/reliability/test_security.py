"""Security rules that hold for the whole package: nothing untrusted is unpickled or evaluated, YAML loads
safely, servers bind loopback by default, and run folders and caches follow the user's umask."""

from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

import pytest

import tastesim

pytestmark = pytest.mark.slow  # the reliability suites are the slow tier's

ROOT = Path(tastesim.__file__).parent


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _name(call: ast.Call) -> str:
    func = call.func
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _keyword(call: ast.Call, name: str) -> object:
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def test_nothing_untrusted_is_unpickled_or_evaluated() -> None:
    problems = []
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                if any(n.split(".")[0] in ("pickle", "dill", "marshal", "shelve") for n in names):
                    problems.append(f"{path.name}:{node.lineno} imports a pickle module")
        for call in _calls(tree):
            name = _name(call)
            if name == "torch.load" and _keyword(call, "weights_only") is not True:
                problems.append(f"{path.name}:{call.lineno} torch.load without weights_only=True")
            if name.endswith("np.load") and _keyword(call, "allow_pickle") is True:
                problems.append(f"{path.name}:{call.lineno} np.load with allow_pickle=True")
            if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "eval", "exec"):
                problems.append(f"{path.name}:{call.lineno} {name}")
    assert problems == []


def test_servers_bind_loopback_by_default() -> None:
    from tastesim.web import AppServer

    defaults = [p.default for p in __import__("inspect").signature(AppServer.__init__).parameters.values()]
    assert "127.0.0.1" in defaults


def test_a_run_folder_and_its_cache_follow_the_umask(slice_dir: Path, tmp_path: Path) -> None:
    from tastesim.runs.simulate import run_simulation
    from tastesim.scenario import Scenario

    scenario = Scenario.model_validate(
        {
            "name": "umask",
            "steps": 2,
            "dataset": {"path": str(slice_dir), "name": "ml-100k-slice"},
            "analyser": {"embedder": "hashing"},
            "decision": {"model": "logical"},
            "memory": {"shards": 1},
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    previous = os.umask(0o022)
    try:
        out = run_simulation(scenario, tmp_path / "run").folder
    finally:
        os.umask(previous)
    writable = [
        str(p.relative_to(tmp_path))
        for p in [*out.rglob("*"), *(tmp_path / "cache").rglob("*")]
        if not p.is_symlink() and p.stat().st_mode & stat.S_IWOTH
    ]
    assert writable == []
    assert (out / "summary.json").is_file()


@pytest.mark.parametrize("module", ["tastesim.cli.crs", "tastesim.cli.llm"])
def test_serving_commands_default_to_loopback(module: str) -> None:
    source = Path(__import__(module, fromlist=["_"]).__file__).read_text(encoding="utf-8")
    assert '"--host"' in source and '"127.0.0.1"' in source and '"0.0.0.0"' not in source
