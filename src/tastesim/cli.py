"""The ``tastesim`` command."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Simulate populations of recommender-system users.")
console = Console()
err_console = Console(stderr=True)

USER_ERROR = 2


def _offline() -> None:
    """Nothing in tastesim downloads: keep Hugging Face libraries from trying."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(USER_ERROR)


@app.command()
def validate(scenario: Annotated[Path, typer.Argument(help="scenario YAML file")]) -> None:
    """Check a scenario file and print the resolved configuration."""
    from tastesim.scenario import ScenarioError, load_scenario

    try:
        resolved = load_scenario(scenario)
    except ScenarioError as err:
        _fail(str(err))
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
    _offline()
    from tastesim.data.dataset import DataFormatError
    from tastesim.scenario import ScenarioError, load_scenario
    from tastesim.world.run import RunError, run_scenario

    try:
        if resume:
            scenario, folder = None, target
        else:
            scenario = load_scenario(target)
            folder = out or Path("runs") / scenario.name
        with _progress() as report:
            result = run_scenario(scenario, folder, resume=resume, progress=report)
    except (ScenarioError, DataFormatError, RunError) as err:
        _fail(str(err))
    _print_summary(result.folder, result.summary)


class _progress:
    """A rich progress display fed by ``run_scenario``'s ``(phase, done, total)`` callback."""

    def __enter__(self):
        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        )
        self._bar.__enter__()
        self._tasks: dict[str, int] = {}
        return self._report

    def _report(self, phase: str, done: int, total: int) -> None:
        for name, task in self._tasks.items():
            if name != phase:
                self._bar.update(task, completed=self._bar.tasks[task].total)
        if phase not in self._tasks:
            self._tasks[phase] = self._bar.add_task(phase, total=total, completed=done)
        else:
            self._bar.update(self._tasks[phase], completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(*exc)


def _print_summary(folder: Path, summary: dict) -> None:
    table = Table(
        title=f"{summary['scenario']}: {summary['steps']} steps, {summary['agents']} agents", show_header=False
    )
    for key in (
        "decisions",
        "click_rate",
        "like_rate",
        "final_cumulative_coverage",
        "mean_category_entropy",
        "mean_novelty",
        "holdout_hit_rate",
        "memory_records",
    ):
        value = summary[key]
        table.add_row(key.replace("_", " "), f"{value:.4f}" if isinstance(value, float) else str(value))
    timing = summary["timing"]
    table.add_row("wall time (s)", str(timing["wall_seconds"]))
    table.add_row("decisions/s", str(timing["decisions_per_second"]))
    console.print(table)
    console.print(f"outputs in [bold]{folder}[/] (summary.json: {json.dumps(summary['timing'])})", highlight=False)


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
