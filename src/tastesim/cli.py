"""The ``tastesim`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tastesim.crs.cli import serve_crs
from tastesim.eval.cli import eval_app
from tastesim.llm.cli import analyze, llm_app
from tastesim.report.cli import report
from tastesim.terminal import USER_ERROR, PhaseProgress, console, fail, offline

__all__ = ["USER_ERROR", "app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Simulate populations of recommender-system users.")


@app.command()
def validate(scenario: Annotated[Path, typer.Argument(help="scenario YAML file")]) -> None:
    """Check a scenario file and print the resolved configuration."""
    from tastesim.scenario import ScenarioError, load_scenario

    try:
        resolved = load_scenario(scenario)
    except ScenarioError as err:
        fail(str(err))
    console.print(f"[green]ok[/] {scenario}")
    console.print(resolved.to_yaml(), highlight=False)


@app.command()
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
    from tastesim.scenario import ScenarioError, load_scenario
    from tastesim.world.run import RunError, run_scenario

    try:
        if resume:
            scenario, folder = None, target
        else:
            scenario = load_scenario(target)
            folder = out or Path("runs") / scenario.name
        with PhaseProgress() as report:
            result = run_scenario(scenario, folder, resume=resume, progress=report)
    except (ScenarioError, DataFormatError, RunError) as err:
        fail(str(err))
    _print_summary(result.folder, result.summary)


def _print_summary(folder: Path, summary: dict) -> None:
    """The headline figures: one column per arm when the run compared recommenders."""
    from tastesim.world.arms import COMPARED

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


app.command("analyze")(analyze)
app.add_typer(llm_app, name="llm")
app.command("serve-crs")(serve_crs)
app.add_typer(eval_app, name="eval")
app.command("report")(report)


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
