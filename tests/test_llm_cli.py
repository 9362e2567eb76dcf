"""``tastesim analyze`` and ``tastesim llm``: outputs, the subjective path on real reviews, user mistakes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tastesim.catalog.profile import read_profiles
from tastesim.cli import USER_ERROR, app

runner = CliRunner()
REVIEWS = Path(__file__).parent / "fixtures/llm/fashion_reviews.jsonl"


def _scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_analyze_keyphrase_writes_jsonl_that_run_can_use(tmp_path: Path, slice_dir: Path) -> None:
    scenario = _scenario(tmp_path, f"analyser:\n  embedder: hashing\ndataset:\n  path: {slice_dir}\n")
    out = tmp_path / "profiles.jsonl"
    args = ["analyze", "-s", str(scenario), "--limit", "7", "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    profiles = read_profiles(out)
    assert len(profiles) == 7 and all(p.source == "keyphrase" for p in profiles)
    assert "items analysed" in result.output


@pytest.mark.slow
def test_subjective_path_on_real_reviews_with_the_embedded_model(tmp_path: Path) -> None:
    out = tmp_path / "fashion.parquet"
    args = ["analyze", "-b", "llamacpp", "--reviews", str(REVIEWS), "--limit", "1", "--out", str(out)]
    small = ["--reviews-per-item", "1", "--max-tokens", "36", "--cache-dir", str(tmp_path / "c")]
    result = runner.invoke(app, [*args, *small])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert list(frame["item"]) == [sorted(pd.read_json(REVIEWS, lines=True)["asin"])[0]]
    assert "LLM calls" in result.output
    assert frame["source"].iloc[0].startswith("llm:llamacpp") or frame["source"].iloc[0] == "fallback"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--backend", "gpt"], "kind"),
        (["--out", "x.csv"], "give a .jsonl or .parquet"),
        (["--reviews", "no/such.jsonl", "-b", "llamacpp"], "not found"),
        (["--base-url", "ftp://x", "-b", "ollama"], "base_url"),
        (["--dataset", "no/such/folder"], "is not a folder"),
    ],
)
def test_user_mistakes_exit_2_with_one_message(args: list[str], words: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["analyze", "--cache-dir", str(tmp_path), *args])
    assert result.exit_code == USER_ERROR, result.output
    assert words in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_ollama_down_exits_2(tmp_path: Path, slice_dir: Path) -> None:
    args = ["analyze", "-d", str(slice_dir), "-b", "ollama", "--base-url", "http://127.0.0.1:9", "--limit", "3"]
    result = runner.invoke(app, [*args, "--cache-dir", str(tmp_path)])
    assert result.exit_code == USER_ERROR, result.output
    assert "check that Ollama is running" in result.output


@pytest.mark.slow
def test_serve_refuses_a_busy_port() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = runner.invoke(app, ["llm", "serve", "--port", str(busy.getsockname()[1])])
    assert result.exit_code == USER_ERROR and "cannot listen" in result.output
