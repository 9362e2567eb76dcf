"""Report: an arms run on the ML-100K slice gives a self-contained report.html that Chromium renders cleanly."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import matplotlib.image as plt_image
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tastesim.cli import app
from tastesim.runs.arms import run_arms
from tastesim.scenario import load_scenario
from tastesim.world.drift_metrics import DRIFT_METRICS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
)
# Appended to a copy of the page (the report itself has no scripts): reports whether every image decoded.
_IMAGE_PROBE = (
    "<script>window.addEventListener('load',()=>{const bad=[...document.images].filter(i=>!i.complete||"
    "i.naturalWidth===0).length;document.body.setAttribute('data-probe','images='+document.images.length+"
    "',broken='+bad);});</script></body>"
)


@pytest.fixture(scope="module")
def arms_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two arms, 3 steps, 30 slice users, with a launch and a trend shock."""
    base = tmp_path_factory.mktemp("report")
    slice_dir = Path(__file__).parent / "fixtures" / "ml-100k-slice"
    data = {
        "name": "report-test",
        "seed": 2,
        "steps": 3,
        "dataset": {"path": str(slice_dir), "name": "ml-100k-slice"},
        "analyser": {"embedder": "hashing"},
        "memory": {"checkpoint_every": 3},
        "cache_dir": str(base / "cache"),
        "shocks": [
            {"kind": "launch", "step": 2, "category": "Drama"},
            {"kind": "trend", "step": 2, "category": "Comedy", "slots": 2},
        ],
        "arms": [
            {"name": "popularity", "recommender": {"name": "popularity"}},
            {"name": "diverse", "recommender": {"name": "diverse"}},
        ],
    }
    path = base / "scenario.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return run_arms(load_scenario(path), base / "out").folder


@pytest.mark.slow
def test_arms_run_writes_arm_folders_and_comparison(arms_run: Path) -> None:
    comparison = pd.read_csv(arms_run / "comparison.csv")
    assert comparison["arm"].tolist() == ["popularity", "diverse"]
    assert comparison["recommender"].tolist() == ["popularity", "diverse"]
    for arm in ("popularity", "diverse"):
        drift = pd.read_parquet(arms_run / arm / "drift.parquet")
        assert list(drift.columns) == ["step", "attribute", "segment", *DRIFT_METRICS]
        assert set(drift["attribute"]) == {"all", "age", "gender", "activity"}
        assert sorted(set(drift["step"])) == [1, 2, 3]
        assert (arms_run / arm / "segments.csv").is_file() and (arms_run / arm / "report.html").is_file()
    # Diversity re-ranking spreads slates: higher mean intra-list distance than most-popular.
    assert (
        comparison.set_index("arm").loc["diverse", "mean_intra_list_distance"]
        > comparison.set_index("arm").loc["popularity", "mean_intra_list_distance"]
    )


@pytest.mark.slow
def test_report_is_self_contained(arms_run: Path) -> None:
    page = (arms_run / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<script" not in page and "http://" not in page and "https://" not in page
    for heading in ("Headline figures", "Arms compared", "Drift curves", "Category stream", "Segments"):
        assert f"<h2>{heading}</h2>" in page
    plots = {p.name for p in (arms_run / "plots" / "report").glob("*.png")}
    assert {"arms.png", "drift.png", "categories.png", "segments-popularity.png", "segments-diverse.png"} <= plots


@pytest.mark.slow
def test_report_command_rebuilds_and_rejects_unfinished_folders(arms_run: Path, tmp_path: Path) -> None:
    (arms_run / "report.html").unlink()
    result = CliRunner().invoke(app, ["report", str(arms_run)])
    assert result.exit_code == 0, result.output
    assert (arms_run / "report.html").is_file()
    empty = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert empty.exit_code == 2
    assert "no finished run" in empty.output and "Traceback" not in empty.output
    talk = tmp_path / "conversation"
    talk.mkdir()
    (talk / "summary.json").write_text('{"recommender": "crs"}', encoding="utf-8")
    no_drift = CliRunner().invoke(app, ["report", str(talk)])
    assert no_drift.exit_code == 2
    assert "no drift.parquet" in no_drift.output and "Traceback" not in no_drift.output


@pytest.mark.slow
def test_report_renders_in_headless_chromium_without_console_errors(arms_run: Path, tmp_path: Path) -> None:
    """A real browser check (CI installs Debian's chromium): a missing browser fails, it never skips."""
    assert CHROMIUM.exists(), "headless Chromium is needed at /usr/bin/chromium: apt-get install -y chromium"
    page = (arms_run / "report.html").read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", _IMAGE_PROBE), encoding="utf-8")

    def chromium(*args: str, profile: str) -> subprocess.CompletedProcess:
        command = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / profile}", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    shot = tmp_path / "report.png"
    plain = chromium(
        "--window-size=1400,2000", f"--screenshot={shot}", (arms_run / "report.html").as_uri(), profile="a"
    )
    console = [line for line in plain.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert shot.is_file() and shot.stat().st_size > 50_000  # a rendered page of figures, not a blank one
    pixels = plt_image.imread(shot)[..., :3]
    inked = (pixels < 0.9).any(axis=-1)
    coloured = (pixels.max(axis=-1) - pixels.min(axis=-1)) > 0.25  # plot lines and bars, not grey text
    assert inked.mean() > 0.03 and coloured.mean() > 0.002, (inked.mean(), coloured.mean())
    probed = chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri(), profile="b")
    assert 'data-probe="images=' in probed.stdout, probed.stderr[-2000:]
    images, broken = map(int, re.search(r'data-probe="images=(\d+),broken=(\d+)"', probed.stdout).groups())
    assert images >= 5 and broken == 0
