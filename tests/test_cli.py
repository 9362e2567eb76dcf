"""The ``tastesim`` command: validation, and user mistakes give one clear message and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tastesim.cli import USER_ERROR, app

runner = CliRunner()


def _scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_validate_prints_the_resolved_scenario() -> None:
    result = runner.invoke(app, ["validate", "scenarios/quickstart.yaml"])
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.output.split("\n", 1)[1])
    assert resolved["name"] == "quickstart" and resolved["steps"] == 20 and resolved["dataset"]["name"] == "ml-100k"


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("steps: 5\nstepz: 3\n", "stepz", "Extra inputs are not permitted"),
        ("steps: many\n", "steps", "valid integer"),
        ("steps: -4\n", "steps", "greater than 0"),
        ("dataset:\n  path: no/such/folder\n", "dataset", "is not a folder"),
        ("recommender:\n  name: oracle\n", "recommender.name", "'diverse', 'mf', 'sasrec' or 'http'"),
        ("memory:\n  capacity: 0\n", "memory.capacity", "greater than or equal to 1"),
        ("steps: [1, 2\n", "", "not valid YAML"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_scenario_names_the_field_and_exits_2(
    tmp_path: Path, command: str, text: str, field: str, words: str
) -> None:
    path = _scenario(tmp_path, text)
    args = [command, str(path)] + (["--out", str(tmp_path / "out")] if command == "run" else [])
    result = runner.invoke(app, args)
    assert result.exit_code == USER_ERROR
    output = " ".join(result.output.split())
    assert "Traceback" not in output and "error:" in output
    assert f"{path}: {field}" in output if field else str(path) in output
    assert words in output
    assert not (tmp_path / "out").exists()


def test_corrupt_data_file_names_file_and_line(tmp_path: Path, slice_copy: Path) -> None:
    inter = slice_copy / "ml-100k-slice.inter"
    lines = inter.read_text(encoding="latin-1").splitlines()
    user, item, _rating, stamp = lines[5].split("\t")
    lines[5] = "\t".join([user, item, "five", stamp])
    inter.write_text("\n".join(lines) + "\n", encoding="latin-1")
    path = _scenario(tmp_path, f"dataset:\n  path: {slice_copy}\n  name: ml-100k-slice\n")
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == USER_ERROR
    output = " ".join(result.output.split())
    assert f"{inter}:6: rating 'five' is not a number" in output
    assert "Traceback" not in output


def test_resume_of_a_folder_without_a_run_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(tmp_path), "--resume"])
    assert result.exit_code == USER_ERROR
    assert "no run to resume" in result.output
