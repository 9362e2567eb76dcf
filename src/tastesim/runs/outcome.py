"""What every run shares: its result, its user-facing error and the progress callback it reports to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Progress", "RunError", "RunResult", "quiet"]

Progress = Callable[[str, int, int], None]  # (phase, done, total)


class RunError(RuntimeError):
    """A run cannot start or continue; ``str()`` tells the user what to do."""


@dataclass(frozen=True)
class RunResult:
    """Where the outputs are and the headline figures."""

    folder: Path
    summary: dict


def quiet(_phase: str, _done: int, _total: int) -> None:
    """A progress callback that shows nothing."""
