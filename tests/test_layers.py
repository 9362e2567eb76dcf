"""Imports go down the layers only: every ``tastesim`` import, at module level or inside a function.

The layers, lowest first (README "Package layout" says what lives in each). A module may import its own
package and the layers below it; two packages of one layer may not import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tastesim

LAYERS: tuple[tuple[str, ...], ...] = (
    ("faults",),
    ("rng", "paths", "text", "prompts", "web"),
    ("data",),
    ("scenario",),
    ("embedding",),
    ("catalog",),
    ("llm",),
    ("analysis",),
    ("memory",),
    ("agents",),
    ("scoring",),
    ("recommenders",),
    ("world",),
    ("engine",),
    ("crs",),
    ("conversation",),
    ("gym",),
    ("report", "eval"),
    ("runs",),
    ("cli",),
)
_RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _part(module: str) -> str | None:
    """The layer part of a ``tastesim.<part>...`` module name (``None`` for other modules)."""
    pieces = module.split(".")
    return pieces[1] if pieces[0] == "tastesim" and len(pieces) > 1 else None


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if base == "tastesim"]
    return found


def upward_imports(root: Path) -> list[str]:
    """Every import in the package at ``root`` that goes up a layer or sideways to another package.

    Also lists a package or top-level module that has no layer (each new one must be placed).
    """
    problems = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).with_suffix("")
        module = ".".join(relative.parts).removesuffix(".__init__")
        here = _part(module)
        if here is None:
            continue  # the root package's __init__: above every layer
        if here not in _RANK:
            problems.append(f"{module}: part {here!r} has no layer; add it to LAYERS")
            continue
        for line, imported in _imports(path, module):
            there = _part(imported)
            if there is None or there == here or there not in _RANK:
                continue
            if _RANK[there] >= _RANK[here]:
                problems.append(f"{path}:{line}: {module} ({here}) imports {imported} ({there}), not below it")
    return problems


def test_every_import_goes_down_the_layers() -> None:
    root = Path(tastesim.__file__).parent
    assert upward_imports(root) == []


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "tastesim"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    "source",
    [
        "from tastesim.world.model import TasteModel\n",
        "def late():\n    from tastesim.runs import simulate\n",
        "import tastesim.cli\n",
        "from tastesim import world\n",
        "from ..world import model\n",
    ],
)
def test_a_planted_upward_import_is_found(tmp_path: Path, source: str) -> None:
    root = _plant(tmp_path, {"__init__.py": "", "memory/__init__.py": "", "memory/store.py": source})
    problems = upward_imports(root)
    assert len(problems) == 1 and "tastesim.memory.store (memory)" in problems[0]


def test_a_sideways_import_within_one_layer_is_found(tmp_path: Path) -> None:
    root = _plant(tmp_path, {"report/__init__.py": "", "report/html.py": "from tastesim.eval import fidelity\n"})
    assert len(upward_imports(root)) == 1


def test_downward_and_own_package_imports_pass(tmp_path: Path) -> None:
    source = "from tastesim.catalog import Catalog\nfrom . import working\nfrom tastesim.memory.store import X\n"
    root = _plant(tmp_path, {"memory/__init__.py": "", "memory/journal.py": source})
    assert upward_imports(root) == []


def test_a_package_without_a_layer_is_reported(tmp_path: Path) -> None:
    root = _plant(tmp_path, {"mystery/__init__.py": "import numpy\n"})
    assert upward_imports(root) == ["tastesim.mystery: part 'mystery' has no layer; add it to LAYERS"]
