"""The body of a memory writer process: it owns one shard of the store and applies the run's commands.

See :mod:`tastesim.memory.writer` for the client side. The process opens its store and says whether that
worked, then applies commands in order (``tastesim.memory.protocol``) until :class:`Stop`, answering
:class:`Flush` and :class:`Stop` with its counters. Its first failure is kept, with the traceback, and
reported in every later reply while later changes are skipped; it exits at once if its run is gone.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import numpy as np

from tastesim.faults import crash_point
from tastesim.memory.protocol import (
    Add,
    Change,
    Command,
    Failure,
    Flush,
    Reconcile,
    Reply,
    Reset,
    Stop,
    Update,
    WriterStats,
)
from tastesim.memory.records import RecordFactory
from tastesim.memory.store import MemoryStore, StoreSpec, open_store

__all__ = ["serve"]

_BATCH = 5000
_NICE = 10  # scheduling priority below the simulation's

T = TypeVar("T")


class _ShardWriter:
    """One process's store and counters; after the first failure every change is skipped."""

    def __init__(self, spec: StoreSpec, factory: RecordFactory, abort: Any) -> None:
        self.spec = spec
        self.factory = factory
        self.abort = abort  # set by the run to drop what is queued, checked between batches
        self.store: MemoryStore | None = None
        self.known: set[str] | None = None  # ids in the store, read on the first add (a resumed run has some)
        self.added = self.updated = 0
        self.busy = 0.0
        self.failure: Failure | None = None

    def open(self) -> Reply:
        """Open the store; the reply says whether that worked."""
        self._guard("opening the store", self._open)
        return self.reply()

    def reply(self) -> Reply:
        """The counters (and the failure, if any) as they stand."""
        count = self._guard("counting the records", lambda: self._store().count())
        reformed = self._guard("counting the records", lambda: self._store().count(where={"reformed": True}))
        return Reply(WriterStats(self.added, self.updated, self.busy, count or 0, reformed or 0), self.failure)

    def apply(self, change: Change) -> None:
        """Apply one change to the store."""
        started = time.perf_counter()
        self._guard(change.task(), lambda: self._apply(change))
        self.busy += time.perf_counter() - started

    def _apply(self, change: Change) -> None:
        store = self._store()
        match change:
            case Add(cols=cols):
                self.known = set(store.ids()) if self.known is None else self.known
                for part in self._batches(cols):
                    self.factory.add(store, part, self.known)
                    crash_point("store-add")  # in the middle of a flush: this batch stored, the next not
                self.added += len(cols["agent"])
            case Update(cols=cols):
                for part in self._batches(cols):
                    self.factory.update(store, part)
                    crash_point("store-update")
                self.updated += len(cols["agent"])
            case Reset():
                store.drop()
                self._open()
                self.known = set()
            case Reconcile(step=step, cols=cols):
                self.factory.reconcile(store, step, cols)
                self.known = None

    def _open(self) -> None:
        self.store = open_store(self.spec.path, self.spec.collection, self.spec.server)  # one shard's spec

    def _store(self) -> MemoryStore:
        assert self.store is not None, "the store is opened before any command"
        return self.store

    def _batches(self, cols: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        for lo in range(0, len(cols["agent"]), _BATCH):
            if self.abort.is_set():
                return
            yield {k: v[lo : lo + _BATCH] for k, v in cols.items()}

    def _guard(self, task: str, work: Callable[[], T]) -> T | None:
        """Run ``work`` unless a failure happened; keep the first failure, with its traceback, to report."""
        if self.failure is not None:
            return None
        try:
            return work()
        except Exception as err:  # any error: the process stays up to report it with its traceback
            error = " ".join(f"{type(err).__name__}: {err}".split())
            self.failure = Failure(f"{task} failed: {error}", traceback.format_exc())
            return None


def _exit_with(parent: Any) -> None:
    """Exit as soon as the run's process is gone: a writer never outlives its run.

    Its queued commands are moot then (the run resumes from a checkpoint), and the run may have died in the
    middle of putting one, which would leave the queue's reader waiting forever for the rest.
    """
    parent.join()
    os._exit(1)


def serve(spec: StoreSpec, inbox: Any, replies: Connection, abort: Any) -> None:
    """Open the store of ``spec`` and say so on ``replies``, then apply the commands from ``inbox`` until Stop.

    Args:
        spec: One shard's store.
        inbox: The :class:`RecordFactory` that turns the commands' columns into records, then the run's
            commands (a multiprocessing queue).
        replies: Where the replies go.
        abort: An event the run sets to have queued changes dropped.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the run stops its writers
    # Writing is behind the simulation by design: a writer takes the CPU the simulation leaves and catches up
    # at checkpoints, instead of slowing every step down (measured: README "Performance").
    with contextlib.suppress(OSError):
        os.nice(_NICE)
    threading.Thread(target=_exit_with, args=(mp.parent_process(),), daemon=True).start()
    factory: RecordFactory = inbox.get()
    writer = _ShardWriter(spec, factory, abort)
    replies.send(writer.open())
    while True:
        command: Command = inbox.get()
        if isinstance(command, Flush | Stop):
            replies.send(writer.reply())
            if isinstance(command, Stop):
                return
        elif not abort.is_set():
            writer.apply(command)
