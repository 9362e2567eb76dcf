"""``tastesim validate`` and ``tastesim run``: the CLI picks the kind of run a scenario describes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tastesim.cli.terminal import PhaseProgress, console, fail, offline

__all__ = ["run", "validate"]


def validate(scenario: Annotated[Path, typer.Argument(help="scenario YAML file")]) -> None:
    """Check a scenario file and print the resolved configuration."""
    from tastesim.scenario import ScenarioError, load_scenario

    try:
        resolved = load_scenario(scenario)
    except ScenarioError as err:
        fail(str(err))
    console.print(f"[green]ok[/] {scenario}")
    console.print(resolved.to_yaml(), highlight=False)


def run(
    target: Annotated[Path, typer.Argument(help="scenario YAML file, or a run folder with --resume")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="output folder (default: runs/<scenario name>)")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the run in TARGET from its last checkpoint")
    ] = False,
) -> None:
    """Run a scenario (or resume a killed run) and write its output folder."""
    offline()
    from tastesim.data.dataset import DataFormatError
    from tastesim.runs.arms import run_arms
    from tastesim.runs.converse import run_conversations
    from tastesim.runs.outcome import RunError
    from tastesim.runs.simulate import resumable_scenario, run_simulation
    from tastesim.scenario import ScenarioError, load_scenario

    try:
        scenario = resumable_scenario(target) if resume else load_scenario(target)
        folder = target if resume else out or Path("runs") / scenario.name
        with PhaseProgress() as report:
            if scenario.conversation is not None:
                if resume:
                    raise RunError(f"{folder} holds a conversation run, which cannot be resumed: run it again")
                result = run_conversations(scenario, folder, report)
            elif scenario.arms:
                result = run_arms(scenario, folder, resume, report)
            else:
                result = run_simulation(None if resume else scenario, folder, resume, report)
    except (ScenarioError, DataFormatError, RunError) as err:
        fail(str(err))
    if scenario.conversation is not None:
        _print_conversation(result.folder, result.summary)
    else:
        _print_summary(result.folder, result.summary)


def _print_summary(folder: Path, summary: dict) -> None:
    """The headline figures: one column per arm when the run compared recommenders."""
    from tastesim.report.comparison import COMPARED

    columns = summary.get("arms") or {"": summary}
    table = Table(
        title=f"{summary['scenario']}: {summary['steps']} steps, {summary['agents']} agents",
        show_header="arms" in summary,
    )
    table.add_column("")
    for name in columns:
        table.add_column(name, justify="right")
    for key in ("decisions", *COMPARED[1:], "memory_records"):
        values = [s[key] for s in columns.values()]
        table.add_row(key.replace("_", " "), *(f"{v:.4f}" if isinstance(v, float) else str(v) for v in values))
    table.add_row("wall time (s)", *(str(s["timing"]["wall_seconds"]) for s in columns.values()))
    table.add_row("decisions/s", *(str(s["timing"]["decisions_per_second"]) for s in columns.values()))
    console.print(table)
    console.print(f"outputs in [bold]{folder}[/] (summary.json: {json.dumps(summary['timing'])})", highlight=False)


def _print_conversation(folder: Path, summary: dict) -> None:
    """The conversation figures of a stress run, one column per CRS compared (``report.json`` has every one)."""
    from tastesim.conversation.metrics import headline_rows

    report = summary["conversation"]
    reports = report.get("by_crs") or {report["crs"]["name"]: report}
    first = next(iter(reports.values()))
    title = f"{summary['scenario']}: {first['sessions_finished']} conversations per CRS"
    table = Table(title=title, show_header=len(reports) > 1)
    table.add_column("")
    for name in reports:
        table.add_column(name, justify="right")
    columns = [headline_rows(r) for r in reports.values()]
    for i, (label, _) in enumerate(columns[0]):
        table.add_row(label, *(rows[i][1] for rows in columns))
    console.print(table)
    console.print(f"outputs in [bold]{folder}[/] (report.json has every figure)", highlight=False)
