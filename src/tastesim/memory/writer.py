"""Writer processes that keep the long-term store in step, behind the simulation.

Chroma's client validates every record in Python, so a writer *thread* would hold the GIL against the
simulation. A writer is therefore a separate process that owns its store (or its shard of the store)
while the run goes on. Embedded Chroma writes on about one core (~1-2k records/s here), so a sharded
store gets one process per shard and a second core writes in parallel (``bench/chroma_write_cost.py``).

The simulation sends typed commands (``tastesim.memory.protocol``) down a queue and returns at once; each
process turns its agents' rows into records (:class:`RecordFactory`) and writes them in batches.
``flush`` waits until everything sent so far is applied and reports the counters. A failure in a
process, or a process that dies, is raised as :class:`MemoryWriterError` by the next ``ready``, ``flush``
or ``close``, never waited on: replies come back on a pipe watched together with the process's sentinel.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from types import TracebackType
from typing import Any, TypeVar

import numpy as np

from tastesim.memory.protocol import (
    Add,
    Change,
    Command,
    Failure,
    Flush,
    MemoryWriterError,
    Reconcile,
    Reply,
    Reset,
    Stop,
    Update,
    WriterStats,
)
from tastesim.memory.records import RecordFactory
from tastesim.memory.store import MemoryStore, StoreSpec, open_store, shard_of

__all__ = ["MemoryWriter"]

_BATCH = 5000
_STOP_GRACE_S = 60.0  # a clean stop: the process answers Stop once its queue is applied
_ABORT_GRACE_S = 10.0  # an abort: the process skips what is queued, so only the batch in hand delays it

T = TypeVar("T")


class _ShardWriter:
    """One process's store and counters; after the first failure every change is skipped."""

    def __init__(self, spec: StoreSpec, factory: RecordFactory) -> None:
        self.spec = spec
        self.factory = factory
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
        return Reply(WriterStats(self.added, self.updated, self.busy, count or 0), self.failure)

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
                for part in _batches(cols):
                    self.factory.add(store, part, self.known)
                self.added += len(cols["agent"])
            case Update(cols=cols):
                for part in _batches(cols):
                    self.factory.update(store, part)
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


def _batches(cols: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    for lo in range(0, len(cols["agent"]), _BATCH):
        yield {k: v[lo : lo + _BATCH] for k, v in cols.items()}


def _next(inbox: Any, parent: Any) -> Command | None:
    """The next command, or ``None`` once the run's process is gone (its queued commands are dropped)."""
    while parent.is_alive():
        try:
            return inbox.get(timeout=1.0)
        except queue.Empty:
            continue
    return None


def _ending(code: int | None) -> str:
    """How a process ended, from its exit code (negative: the signal that killed it)."""
    if code is None or code >= 0:
        return f"exit code {code}"
    names = {int(s): s.name for s in signal.Signals}
    return f"killed by {names.get(-code, f'signal {-code}')}"


def _serve(spec: StoreSpec, factory: RecordFactory, inbox: Any, replies: Connection, abort: Any) -> None:
    """Body of a writer process: open the store and say so, then apply commands until Stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the run stops its writers
    writer = _ShardWriter(spec, factory)
    replies.send(writer.open())
    parent = mp.parent_process()
    while (command := _next(inbox, parent)) is not None:
        if isinstance(command, Flush | Stop):
            replies.send(writer.reply())
            if isinstance(command, Stop):
                return
        elif not abort.is_set():
            writer.apply(command)


class MemoryWriter:
    """Client side of the writer processes, one per shard of ``spec``; rows go to their agent's shard.

    A context manager: leaving the block closes the writer (everything sent is applied) or, when the block
    raised, aborts it (queued commands are dropped; what an earlier ``flush`` confirmed stays in the store).
    """

    def __init__(self, spec: StoreSpec, factory: RecordFactory) -> None:
        ctx = mp.get_context("spawn")
        self._parts = spec.parts()
        self._abort = ctx.Event()
        self._inboxes = [ctx.Queue() for _ in self._parts]
        pipes = [ctx.Pipe(duplex=False) for _ in self._parts]
        self._replies = [reader for reader, _ in pipes]
        self._processes = [
            ctx.Process(
                target=_serve,
                args=(part, factory, inbox, sender, self._abort),
                name=f"memory-writer-{k}",
                daemon=True,
            )
            for k, (part, inbox, (_, sender)) in enumerate(zip(self._parts, self._inboxes, pipes, strict=True))
        ]
        for process in self._processes:
            process.start()
        for _, sender in pipes:
            sender.close()  # only the process holds its sending end now
        self._opened = [False] * len(self._parts)
        self.stats = WriterStats()
        self.closed = False

    def __enter__(self) -> MemoryWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def add(self, cols: dict[str, np.ndarray]) -> None:
        """Send new records (columns agent, reason, polarity, item, created, strength, last)."""
        for inbox, part in zip(self._inboxes, self._split(cols), strict=True):
            if len(part["agent"]):
                inbox.put(Add(part))

    def update(self, cols: dict[str, np.ndarray]) -> None:
        """Send strength updates (columns agent, reason, polarity, strength, last)."""
        for inbox, part in zip(self._inboxes, self._split(cols), strict=True):
            if len(part["agent"]):
                inbox.put(Update(part))

    def reset(self) -> None:
        """Empty the store (a run that never checkpointed starts over)."""
        for inbox in self._inboxes:
            inbox.put(Reset())

    def reconcile(self, step: int, cols: dict[str, np.ndarray]) -> None:
        """Bring the store back to a checkpoint (see :meth:`RecordFactory.reconcile`)."""
        for inbox, part in zip(self._inboxes, self._split(cols), strict=True):
            inbox.put(Reconcile(step, part))

    def ready(self) -> None:
        """Wait until every process has opened its store.

        Raises:
            MemoryWriterError: A process could not open its store, or died.
        """
        self._check(self._openings())

    def flush(self) -> WriterStats:
        """Wait until everything sent is written.

        Raises:
            MemoryWriterError: A process failed (the failure sticks: later commands are not applied) or died.
        """
        return self._roundtrip(Flush())

    def close(self) -> WriterStats:
        """Apply everything sent, then stop the processes (closing twice is harmless).

        Raises:
            MemoryWriterError: As :meth:`flush`; the processes are stopped all the same.
        """
        if self.closed:
            return self.stats
        try:
            return self._roundtrip(Stop())
        except MemoryWriterError:
            self._abort.set()  # the others need not apply what is queued: the run resumes from a checkpoint
            raise
        finally:
            self._shutdown()

    def abort(self) -> None:
        """Stop the processes without applying what is still queued (the run failed; it resumes from a checkpoint)."""
        if self.closed:
            return
        self._abort.set()
        for inbox in self._inboxes:
            inbox.put(Stop())
        self._shutdown()

    def _split(self, cols: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        if len(self._inboxes) == 1:
            return [cols]
        shard = shard_of(cols["agent"], len(self._inboxes))
        return [{k: v[shard == i] for k, v in cols.items()} for i in range(len(self._inboxes))]

    def _roundtrip(self, command: Flush | Stop) -> WriterStats:
        for inbox in self._inboxes:
            inbox.put(command)
        self._check(self._openings())
        replies = self._gather(list(range(len(self._parts))))
        self._check(replies)
        self.stats = WriterStats.combined([reply.stats for _, reply in replies])
        return self.stats

    def _openings(self) -> list[tuple[int, Reply]]:
        """The replies processes send once they opened their store, for those not read yet."""
        replies = self._gather([k for k, opened in enumerate(self._opened) if not opened])
        for k, _ in replies:
            self._opened[k] = True
        return replies

    def _gather(self, pending: list[int]) -> list[tuple[int, Reply]]:
        """``(process, next reply)`` of the processes in ``pending`` as they come, up to the first failure.

        Once one process has failed or died, every later call fails too, so the others are not waited for.
        """
        replies: list[tuple[int, Reply]] = []
        while pending:
            wait([self._replies[k] for k in pending] + [self._processes[k].sentinel for k in pending])
            for k in [k for k in pending if self._replies[k].poll() or not self._processes[k].is_alive()]:
                pending.remove(k)
                replies.append((k, self._receive(k)))
                if replies[-1][1].failure is not None:
                    return replies
        return replies

    def _receive(self, k: int) -> Reply:
        """Process ``k``'s reply once it is there or the process has ended (then a failure)."""
        reader, process = self._replies[k], self._processes[k]
        if reader.poll():  # a reply is there (the process may have ended just after sending it)
            try:
                return reader.recv()
            except EOFError:
                pass
        process.join()
        return Reply(WriterStats(), Failure(f"the process ended unexpectedly ({_ending(process.exitcode)})"))

    def _check(self, replies: list[tuple[int, Reply]]) -> None:
        for k, reply in replies:
            if reply.failure is not None:
                summary = f"memory writer of {self._parts[k].where()}: {reply.failure.what}"
                raise MemoryWriterError(summary, reply.failure.traceback or None)

    def _shutdown(self) -> None:
        deadline = time.monotonic() + (_ABORT_GRACE_S if self._abort.is_set() else _STOP_GRACE_S)
        for process in self._processes:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join()
        for inbox in self._inboxes:
            inbox.cancel_join_thread()  # commands no process will read must not hold up this process's exit
            inbox.close()
        for reader in self._replies:
            reader.close()
        self.closed = True
