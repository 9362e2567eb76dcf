"""What every run shares: its result, its user-facing error and the progress callback it reports to."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Progress", "RunError", "RunResult", "disk_full_stops", "quiet"]

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


@contextmanager
def disk_full_stops(out: Path) -> Iterator[None]:
    """A full disk (or quota) ends the run with one message; its folder resumes from the last checkpoint once
    there is space again (every checkpoint and output file is written whole or not at all)."""
    try:
        yield
    except OSError as err:
        if err.errno not in {errno.ENOSPC, errno.EDQUOT}:
            raise
        where = err.filename or out
        then = f"`tastesim run {out} --resume`" if (out / "scenario.yaml").exists() else "the run again"
        raise RunError(f"no space left on the device writing {where}: free some space, then {then}") from err
