"""``tastesim report DIR``: rebuild a run folder's report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tastesim.cli.terminal import fail

__all__ = ["report"]


def report(folder: Annotated[Path, typer.Argument(help="a finished run folder (or arms folder)")]) -> None:
    """Rebuild report.html and its PNGs in a run folder."""
    from tastesim.report.html import ReportError, write_report

    try:
        path = write_report(folder)
    except ReportError as err:
        fail(str(err))
    typer.echo(f"report written to {path}")
