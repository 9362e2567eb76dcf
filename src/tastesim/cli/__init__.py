"""The ``tastesim`` command."""

from __future__ import annotations

import typer

from tastesim.cli.crs import serve_crs
from tastesim.cli.eval import eval_app
from tastesim.cli.llm import analyze, llm_app
from tastesim.cli.report import report
from tastesim.cli.rl import rl_app
from tastesim.cli.simulate import run, validate
from tastesim.cli.terminal import USER_ERROR

__all__ = ["USER_ERROR", "app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Simulate populations of recommender-system users.")


app.command()(validate)
app.command()(run)
app.command("analyze")(analyze)
app.add_typer(llm_app, name="llm")
app.command("serve-crs")(serve_crs)
app.add_typer(eval_app, name="eval")
app.add_typer(rl_app, name="rl")
app.command("report")(report)


def main() -> None:
    """Console entry point."""
    app()
