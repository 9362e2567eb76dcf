"""Fuzzed scenario files: every one is either a valid scenario or one user error naming the field (or the
file and line) with exit code 2; never a traceback, a hang or a memory blow-up.

Hypothesis writes >= 1,000 files per run: a valid scenario with one to four mutations (wrong types,
unknown keys, out-of-range and huge numbers, deep nesting, YAML aliases, ``!!python`` tags, NUL bytes,
paths that escape the scenario's folder), plus broken YAML, non-UTF-8 bytes and an alias bomb.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tastesim.cli import app
from tastesim.scenario import Scenario, ScenarioError, load_scenario

pytestmark = pytest.mark.slow  # 1,400 generated files: about a minute

SECTIONS = {
    "dataset": ["name", "path", "format"],
    "population": ["users", "train_fraction", "like_threshold", "activity"],
    "memory": ["capacity", "server", "checkpoint_every", "shards"],
    "analyser": ["kind", "profiles", "embedder", "model", "timeout_s", "reviews", "reviews_per_item"],
    "recommender": ["name", "slate_size", "neighbours", "retrain_every", "url", "factors"],
    "decision": ["model", "click_threshold", "click_temperature", "tie_like", "stat_epochs"],
    "drift": ["enabled", "pull", "push", "decay", "affinity", "exploration"],
    "conversation": ["sessions", "turns", "k", "styles", "writer", "llm", "llm_options", "crs_url"],
}
TOP = ["name", "seed", "steps", "cache_dir", "shocks", "arms", "segments"]

weird_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["..", "../../../../etc/passwd", "/", "a\x00b", "x" * 5000, "http://", "~", "$HOME", "-1"]),
)
values = st.recursive(
    weird_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn) -> dict:
    """A small valid scenario with a few fields replaced by anything, or keys that do not exist."""
    document: dict = {"name": "fuzz", "steps": 3, "dataset": {"name": "ml-100k"}}
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from([*SECTIONS, *TOP, "unknown"]))
        if where in SECTIONS:
            key = draw(st.sampled_from([*SECTIONS[where], draw(st.text(min_size=1, max_size=10))]))
            section = document.setdefault(where, {})
            if isinstance(section, dict):
                section[key] = draw(values)
            else:
                document[where] = {key: draw(values)}
        else:
            document[where if where != "unknown" else draw(st.text(min_size=1, max_size=12))] = draw(values)
    return document


def _texts() -> st.SearchStrategy[bytes]:
    documents = mutated().map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode("utf-8"))
    broken = st.sampled_from(
        [
            b"steps: [1, 2\n",
            b"name: x\n  bad indent: 3\n",
            b"!!python/object/apply:os.system ['echo pwned']\n",
            b"dataset: !!python/name:os.system\n",
            b"steps: !!binary AAAA\n",
            b"\xff\xfe\x00steps: 3\n",
            b"name: caf\xe9\n",
            b"- just\n- a list\n",
            b"",
            b"[" * 5000 + b"]" * 5000,
            b"a: &a [" + b",".join([b"*a"] * 3) + b"]\n",  # a recursive alias
            b"\t",
        ]
    )
    return st.one_of(documents, documents, documents, broken, st.binary(max_size=200))


def _alias_bomb(levels: int = 9) -> bytes:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append(f"steps: *a{levels}")
    return ("\n".join(lines) + "\n").encode()


def _check(path: Path) -> None:
    """Loading gives a scenario or one ScenarioError whose lines each name the file (and a field)."""
    try:
        scenario = load_scenario(path)
    except ScenarioError as err:
        lines = str(err).splitlines()
        assert lines and all(line.startswith(str(path)) for line in lines), str(err)[:500]
        assert "Traceback" not in str(err)
        return
    assert isinstance(scenario, Scenario)
    json.dumps(scenario.model_dump(mode="json"))  # a valid scenario serialises (its resolved copy is saved)


@settings(max_examples=1_300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_texts())
def test_every_fuzzed_scenario_is_valid_or_one_user_error(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_bytes(text)
    _check(path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=mutated())
def test_the_cli_never_prints_a_traceback(tmp_path: Path, document: dict) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code in (0, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert re.search(r"error: .*scenario\.yaml", result.output), result.output


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_bytes(_alias_bomb())  # 9^10 values once expanded
    with pytest.raises(ScenarioError, match="more than 100,000 values"):
        load_scenario(path)


def test_oversized_folder_and_python_tags_are_user_errors(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"name: x\n" + b"# padding\n" * 200_000)
    with pytest.raises(ScenarioError, match="at most"):
        load_scenario(big)
    with pytest.raises(ScenarioError, match="is a folder"):
        load_scenario(tmp_path)
    tagged = tmp_path / "tag.yaml"
    tagged.write_bytes(b"!!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(tagged)
    assert not (tmp_path / "pwned").exists()


def test_a_name_cannot_reach_outside_the_run_folder(tmp_path: Path) -> None:
    for name in ("..", "../x", "/abs", "a/b", ".hidden", "x" * 65, "a\\b"):
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump({"name": name}), encoding="utf-8")
        with pytest.raises(ScenarioError, match=r"name"):
            load_scenario(path)
