"""Writer processes that keep the long-term store in step, behind the simulation.

Chroma's client validates every record in Python, so a writer *thread* would hold the GIL against the
simulation. A writer is therefore a separate process that owns its store (or its shard of the store)
while the run goes on. Embedded Chroma writes on about one core (~1-2k records/s here), so a sharded
store gets one process per shard and a second core writes in parallel (``bench/chroma_write_cost.py``).

The simulation sends typed commands (``tastesim.memory.protocol``) down a queue and returns at once; each
process (``tastesim.memory.writer_process``) turns its agents' rows into records and writes them in batches.
``flush`` waits until everything sent so far is applied and reports the counters. A failure in a
process, or a process that dies, is raised as :class:`MemoryWriterError` by the next ``ready``, ``flush``
or ``close``, never waited on: replies come back on a pipe watched together with the process's sentinel.
The processes are always stopped (``close``, or ``abort`` when the run fails), and a process whose run
is gone exits at once.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import time
from multiprocessing.connection import wait
from types import TracebackType

import numpy as np

from tastesim.memory.protocol import (
    Add,
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
from tastesim.memory.store import StoreSpec, shard_of
from tastesim.memory.writer_process import serve

__all__ = ["MemoryWriter"]

_STOP_GRACE_S = 60.0  # a clean stop: the process answers Stop once its queue is applied
_ABORT_GRACE_S = 10.0  # an abort: the process skips what is queued, so only the batch in hand delays it
_BEFORE_OPENING = (
    " before opening its store; if the run was started from a Python script, put the script's code under"
    ' `if __name__ == "__main__":` (writer processes start by importing the script again)'
)


def _ending(code: int | None) -> str:
    """How a process ended, from its exit code (negative: the signal that killed it)."""
    if code is None or code >= 0:
        return f"exit code {code}"
    names = {int(s): s.name for s in signal.Signals}
    return f"killed by {names.get(-code, f'signal {-code}')}"


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
        # The spawn start method writes a process's arguments down a pipe the parent keeps open for the child:
        # past the pipe's 64 KiB a child that dies before reading them (a script without a ``__main__``
        # guard) leaves ``start`` blocked forever. So the arguments stay small, and the factory (reason
        # vectors: megabytes) goes down the queue, whose feeder thread a dead reader cannot hold up.
        self._processes = [
            ctx.Process(target=serve, args=(part, inbox, sender, self._abort), name=f"memory-writer-{k}", daemon=True)
            for k, (part, inbox, (_, sender)) in enumerate(zip(self._parts, self._inboxes, pipes, strict=True))
        ]
        for process, inbox in zip(self._processes, self._inboxes, strict=True):
            process.start()
            inbox.put(factory)
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
        self._send(Add, cols)

    def update(self, cols: dict[str, np.ndarray]) -> None:
        """Send strength updates (columns agent, reason, polarity, strength, last)."""
        self._send(Update, cols)

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

    def _send(self, command: type[Add | Update], cols: dict[str, np.ndarray]) -> None:
        for inbox, part in zip(self._inboxes, self._split(cols), strict=True):
            if len(part["agent"]):
                inbox.put(command(part))

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
        what = f"the process ended unexpectedly ({_ending(process.exitcode)})"
        if not self._opened[k]:
            what += _BEFORE_OPENING
        return Reply(WriterStats(), Failure(what))

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
