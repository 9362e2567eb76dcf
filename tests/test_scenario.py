"""Scenario files: a valid file, and every kind of bad input naming the field at fault."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydantic
import pytest

from tastesim.scenario import Scenario, ScenarioError, load_scenario

VALID = """\
name: slice-run
seed: 7
steps: 12
dataset:
  path: data/ml-100k-slice
  format: atomic
population:
  users: 20
  train_fraction: 0.7
memory:
  capacity: 16
  checkpoint_every: 3
analyser:
  embedder: hashing
recommender:
  name: itemknn
  slate_size: 5
  neighbours: 20
decision:
  click_threshold: 0.5
  tie_like: 0.4
cache_dir: cache
"""


@pytest.fixture
def scenario_dir(tmp_path: Path, slice_dir: Path) -> Path:
    """A folder with the slice under ``data/`` (scenario paths are relative to the scenario file)."""
    shutil.copytree(slice_dir, tmp_path / "data" / "ml-100k-slice")
    return tmp_path


def _write(folder: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path, overrides: dict | None = None) -> str:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides)
    message = str(info.value)
    assert message.startswith(str(path))  # every message names the file
    return message


def test_valid_scenario(scenario_dir: Path) -> None:
    scenario = load_scenario(_write(scenario_dir, VALID))
    assert isinstance(scenario, Scenario)
    assert (scenario.name, scenario.seed, scenario.steps) == ("slice-run", 7, 12)
    # Relative paths are resolved against the scenario file's folder.
    assert scenario.dataset.path == (scenario_dir / "data" / "ml-100k-slice").resolve()
    assert scenario.dataset.format == "atomic"
    assert scenario.cache_dir == (scenario_dir / "cache").resolve()
    assert scenario.population.users == 20 and scenario.population.train_fraction == 0.7
    assert scenario.population.like_threshold == 3.0  # default kept
    assert scenario.memory.capacity == 16 and scenario.memory.checkpoint_every == 3
    assert scenario.analyser.embedder == "hashing"
    assert (scenario.recommender.name, scenario.recommender.slate_size, scenario.recommender.neighbours) == (
        "itemknn",
        5,
        20,
    )
    assert scenario.decision.click_threshold == 0.5 and scenario.decision.tie_like == 0.4
    assert scenario.decision.click_temperature == 0.08


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, ""))
    assert scenario.dataset.name == "ml-100k" and scenario.dataset.path is None
    assert scenario.steps == 20
    assert scenario.recommender.name == "popularity"


def test_scenario_is_frozen(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, "steps: 3\n"))
    with pytest.raises(pydantic.ValidationError):
        scenario.steps = 4


def test_to_yaml_round_trip(scenario_dir: Path, tmp_path: Path) -> None:
    scenario = load_scenario(_write(scenario_dir, VALID))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = load_scenario(_write(elsewhere, scenario.to_yaml(), "resolved.yaml"))  # absolute paths survive
    assert again == scenario


def test_overrides(scenario_dir: Path) -> None:
    path = _write(scenario_dir, VALID)
    assert load_scenario(path, {"steps": 3, "seed": 1}).steps == 3
    message = _error(path, {"steps": 0})
    assert "steps" in message


@pytest.mark.parametrize(
    ("text", "field", "hint"),
    [
        ("stepz: 3\n", "stepz", "Extra inputs are not permitted"),
        (
            "recommender:\n  name: popularity\n  slate: 5\n",
            "recommender.slate",
            "Extra inputs are not permitted",
        ),
        ("steps: many\n", "steps", "valid integer"),
        ("steps: 2.5\n", "steps", "integer"),
        ("memory:\n  capacity: [1, 2]\n", "memory.capacity", "valid integer"),
        ("decision: fast\n", "decision", "valid dictionary"),
        ("steps: -5\n", "steps", "greater than 0"),
        ("steps: 0\n", "steps", "greater than 0"),
        ("recommender:\n  name: bpr\n", "recommender.name", "'diverse', 'mf', 'sasrec' or 'http'"),
        ("decision:\n  tie_like: 1.5\n", "decision.tie_like", "less than or equal to 1"),
        ("name: has spaces\n", "name", "cannot name a run"),
        ('name: ".."\n', "name", "cannot name a run"),
        ("name: .hidden\n", "name", "starting and ending with a letter or digit"),
        ("name: run-\n", "name", "starting and ending with a letter or digit"),
        ("name: a..b\n", "name", "never '..'"),
        (f"name: {'x' * 65}\n", "name", "1-64 letters"),
        ("arms:\n  - name: ..\n    recommender: {name: random}\n", "arms.0.name", "cannot name a run"),
        ("dataset:\n  name: ml-1b\n", "dataset", "built-in"),
        ("memory:\n  server: localhost:8000\n", "memory.server", "pattern"),
    ],
)
def test_bad_field_is_named(tmp_path: Path, text: str, field: str, hint: str) -> None:
    message = _error(_write(tmp_path, text))
    assert f": {field}: " in message
    assert hint in message


@pytest.mark.parametrize("name", ["a", "run_1", "quick.start-2", "1.2.3.4", "x" * 64])
def test_names_that_make_valid_folders_and_collections(tmp_path: Path, name: str) -> None:
    assert load_scenario(_write(tmp_path, f"name: {name}\n")).name == name


def test_missing_dataset_path(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "dataset:\n  path: no/such/folder\n"))
    assert ": dataset: " in message
    assert str((tmp_path / "no" / "such" / "folder").resolve()) in message
    assert "is not a folder" in message


def test_missing_profiles_file(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "analyser:\n  profiles: missing.jsonl\n"))
    assert ": analyser: " in message and "missing.jsonl" in message


def test_every_problem_on_its_own_line(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "steps: -1\nseed: -2\nrecommender:\n  name: bpr\n"))
    lines = message.splitlines()
    assert len(lines) == 3
    assert sorted(line.split(": ")[1] for line in lines) == ["recommender.name", "seed", "steps"]


@pytest.mark.parametrize(
    "text", ["steps: [1, 2\n", "dataset:\n  path: a\n bad indent: 1\n", "key: value: other\n", "\t- tab\n"]
)
def test_invalid_yaml(tmp_path: Path, text: str) -> None:
    message = _error(_write(tmp_path, text))
    assert "not valid YAML" in message


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just a string\n", "42\n"])
def test_not_a_mapping(tmp_path: Path, text: str) -> None:
    assert "a scenario is a mapping of fields" in _error(_write(tmp_path, text))


def test_missing_scenario_file(tmp_path: Path) -> None:
    assert "file not found" in _error(tmp_path / "absent.yaml")


def test_reviews_path_is_relative_to_the_scenario_file(scenario_dir: Path, tmp_path: Path, monkeypatch) -> None:
    (scenario_dir / "reviews.csv").write_text("item,rating,text\n1,5,great\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    scenario = load_scenario(_write(scenario_dir, "analyser: {kind: llamacpp, reviews: reviews.csv}\n"))
    assert scenario.analyser.reviews == (scenario_dir / "reviews.csv").resolve()


@pytest.mark.parametrize(
    "extra",
    [
        "arms:\n  - {name: pop, recommender: {name: popularity}}\n",
        "shocks:\n  - {kind: launch, step: 2, category: Drama}\n",
    ],
)
def test_conversation_runs_refuse_arms_and_shocks(tmp_path: Path, extra: str) -> None:
    message = _error(_write(tmp_path, "conversation: {sessions: 2}\n" + extra))
    assert "remove arms and shocks, or the conversation section" in message


def test_llm_requests_in_flight_default_per_backend(tmp_path: Path) -> None:
    def in_flight(analyser: str) -> int:
        return load_scenario(_write(tmp_path, f"analyser: {analyser}\n")).analyser.in_flight

    assert in_flight("{kind: llamacpp}") == 4  # llama.cpp slots: fastest measured on 2 cores
    assert in_flight("{kind: ollama}") == 2
    assert in_flight("{kind: llamacpp, concurrency: 1}") == 1
    assert ": analyser.concurrency: " in _error(_write(tmp_path, "analyser: {concurrency: 0}\n"))
