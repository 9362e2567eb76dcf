"""Arms: one scenario run against several recommenders on identical populations and seeds.

An arms scenario writes ``scenario.yaml`` (with the arms), one complete run folder per arm (``<out>/<arm>``,
each resumable on its own) and ``comparison.csv`` with the arms' headline figures side by side. Every arm
is the scenario with only ``recommender`` (and the name) replaced, so population, seeded memories and
every random stream are the same in all arms.
"""

from __future__ import annotations

import json
from pathlib import Path

from tastesim.paths import atomic_write, atomic_write_text
from tastesim.report.comparison import COMPARED, comparison_table
from tastesim.report.html import write_report
from tastesim.runs.outcome import Progress, RunResult, quiet
from tastesim.runs.simulate import run_simulation
from tastesim.scenario import Scenario

__all__ = ["arm_scenarios", "run_arms"]


def arm_scenarios(scenario: Scenario) -> list[tuple[str, Scenario]]:
    """``(arm name, scenario of that arm)`` in the scenario's order."""
    return [
        (
            arm.name,
            scenario.model_copy(
                update={"name": f"{scenario.name}-{arm.name}"[:64], "recommender": arm.recommender, "arms": []}
            ),
        )
        for arm in scenario.arms
    ]


def run_arms(scenario: Scenario, out: Path, resume: bool = False, progress: Progress = quiet) -> RunResult:
    """Run (or resume) every arm into ``out/<arm>``, then compare them.

    Args:
        scenario: The scenario with ``arms``.
        out: Output folder.
        resume: Continue: finished arms are kept, an interrupted arm resumes from its checkpoint.
        progress: ``(phase, done, total)`` callback; phases are prefixed with the arm's name.

    Returns:
        The folder and the summary: figures averaged over arms, plus ``arms`` (each arm's summary).
    """
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        atomic_write_text(out / "scenario.yaml", scenario.to_yaml())
    summaries: dict[str, dict] = {}
    for name, arm in arm_scenarios(scenario):
        folder = out / name

        def report(phase: str, done: int, total: int, arm_name: str = name) -> None:
            progress(f"{arm_name}: {phase}", done, total)

        if (folder / "summary.json").exists():
            summaries[name] = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        elif resume and (folder / "scenario.yaml").exists():
            summaries[name] = run_simulation(None, folder, resume=True, progress=report).summary
        else:
            summaries[name] = run_simulation(arm, folder, progress=report).summary
    table = comparison_table(summaries)
    atomic_write(out / "comparison.csv", lambda tmp: table.to_csv(tmp, index=False))
    summary = _pooled(scenario, summaries)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_report(out)
    return RunResult(out, summary)


def _pooled(scenario: Scenario, summaries: dict[str, dict]) -> dict:
    first = next(iter(summaries.values()))
    n = len(summaries)
    decisions = sum(s["decisions"] for s in summaries.values())
    wall = sum(s["timing"]["wall_seconds"] for s in summaries.values())
    step_seconds = sum(s["timing"]["step_seconds"] for s in summaries.values())
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "steps": first["steps"],
        "agents": first["agents"],
        "recommender": "arms: " + ", ".join(summaries),
        "decisions": decisions,
        **{k: sum(s[k] for s in summaries.values()) / n for k in COMPARED[1:]},
        "memory_records": sum(s["memory_records"] for s in summaries.values()),
        "timing": {
            "wall_seconds": round(wall, 2),
            "step_seconds": round(step_seconds, 2),
            "decisions_per_second": round(decisions / step_seconds, 1) if step_seconds else None,
        },
        "arms": summaries,
    }
