"""What the simulation and its memory writer processes say to each other: one frozen dataclass per command.

The client (:class:`tastesim.memory.writer.MemoryWriter`) sends commands down a queue and returns at once;
the process answers :class:`Flush` and :class:`Stop` with a :class:`Reply`, and sends one unasked
:class:`Reply` right after opening its store, so that a store that cannot be opened is reported at once.
A failure in the process travels in the reply with its formatted traceback, and the client raises it as a
:class:`MemoryWriterError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Add",
    "Change",
    "Command",
    "Failure",
    "Flush",
    "MemoryWriterError",
    "Reconcile",
    "Reply",
    "Reset",
    "Stop",
    "Update",
    "WriterStats",
]

Columns = dict[str, np.ndarray]


@dataclass(frozen=True)
class Add:
    """New records: columns agent, reason, polarity, item, created, strength, last."""

    cols: Columns

    def task(self) -> str:
        """What this asks of the writer, for messages."""
        return f"adding {len(self.cols['agent'])} records"


@dataclass(frozen=True)
class Update:
    """Strength updates of existing records: columns agent, reason, polarity, strength, last."""

    cols: Columns

    def task(self) -> str:
        """What this asks of the writer, for messages."""
        return f"updating {len(self.cols['agent'])} strengths"


@dataclass(frozen=True)
class Reset:
    """Empty the store (a run that never checkpointed starts over)."""

    def task(self) -> str:
        """What this asks of the writer, for messages."""
        return "emptying the store"


@dataclass(frozen=True)
class Reconcile:
    """Bring the store back to the checkpoint at ``step`` whose working memory is ``cols`` (as in :class:`Add`)."""

    step: int
    cols: Columns

    def task(self) -> str:
        """What this asks of the writer, for messages."""
        return f"going back to the checkpoint at step {self.step}"


@dataclass(frozen=True)
class Flush:
    """Answer once everything sent before is applied."""


@dataclass(frozen=True)
class Stop:
    """Answer like :class:`Flush`, then exit."""


Change = Add | Update | Reset | Reconcile  # applied to the store, in order
Command = Change | Flush | Stop


@dataclass(frozen=True)
class WriterStats:
    """Counters of the writer process."""

    records_added: int = 0
    records_updated: int = 0
    seconds_writing: float = 0.0
    records_in_store: int = 0
    records_reformed: int = 0  # records of memories a seed store held before (see RecordFactory)

    @staticmethod
    def combined(shards: list[WriterStats]) -> WriterStats:
        """Counters of shards written in parallel: sums, and the longest shard's writing time."""
        return WriterStats(
            sum(s.records_added for s in shards),
            sum(s.records_updated for s in shards),
            max(s.seconds_writing for s in shards),
            sum(s.records_in_store for s in shards),
            sum(s.records_reformed for s in shards),
        )


@dataclass(frozen=True)
class Failure:
    """What went wrong in a writer process: one line, and the formatted traceback (empty if it died)."""

    what: str
    traceback: str = ""


@dataclass(frozen=True)
class Reply:
    """A writer process's answer: its counters, and its failure if one happened (later commands are skipped)."""

    stats: WriterStats
    failure: Failure | None = None


class MemoryWriterError(RuntimeError):
    """A memory writer process failed or died; ``summary`` is one line, ``str()`` adds the process's traceback."""

    def __init__(self, summary: str, child_traceback: str | None = None) -> None:
        self.summary = summary
        self.child_traceback = child_traceback
        detail = f"\n\ntraceback in the writer process:\n{child_traceback.rstrip()}" if child_traceback else ""
        super().__init__(summary + detail)
