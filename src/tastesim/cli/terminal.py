"""What every ``tastesim`` command shares: consoles, the user-error exit, offline mode, a phase progress bar."""

from __future__ import annotations

import os
from typing import NoReturn

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

__all__ = ["USER_ERROR", "PhaseProgress", "console", "err_console", "fail", "offline"]

console = Console()
err_console = Console(stderr=True)

USER_ERROR = 2


def offline() -> None:
    """Nothing in tastesim downloads: keep Hugging Face libraries from trying."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def fail(message: str) -> NoReturn:
    """Print a user error (no traceback) and exit with status 2."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(USER_ERROR)


class PhaseProgress:
    """A rich progress display fed by a ``(phase, done, total)`` callback; one bar per phase."""

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
