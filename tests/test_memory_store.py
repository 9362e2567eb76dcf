"""Embedded Chroma specifics and the writer processes' lifetime: failures, a killed writer, abort, ready.

What every store must do (embedded and on a server) is in ``contracts/test_memory_store_contract.py``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from memory_samples import DIM, cols, factory, fill, many, meta
from tastesim.memory.protocol import MemoryWriterError
from tastesim.memory.store import MemoryStore, StoreSpec, open_store, record_id
from tastesim.memory.writer import MemoryWriter

COLLECTION = "memories-test"


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    return open_store(tmp_path / "chroma", COLLECTION)


def test_record_id() -> None:
    assert record_id(3, 17, 1) == "a3-r17-L"
    assert record_id(0, 2, -1) == "a0-r2-D"


def test_recall_finds_each_record_from_its_own_vector_in_a_crowded_store(store: MemoryStore) -> None:
    # 150 agents x 20 memories clustered around 30 reasons (as MiniLM vectors of reason texts are), stored in
    # batches, then a third re-learned with new vectors (upserts), as a run does. Every record must come
    # back first for its own vector: Chroma's filtered HNSW query on this store missed ~2 % of them.
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((30, DIM)).astype(np.float32)

    def around(n: int) -> np.ndarray:
        return centres[rng.integers(0, 30, n)] + 0.05 * rng.standard_normal((n, DIM)).astype(np.float32)

    vectors = around(3000)
    ids = [f"a{i // 20}-r{i % 20}" for i in range(3000)]
    for lo in range(0, 3000, 1000):
        store.add(ids[lo : lo + 1000], vectors[lo : lo + 1000], ids[lo : lo + 1000],
                  [meta(i // 20) for i in range(lo, lo + 1000)], overwrite=False)  # fmt: skip
    redo = np.arange(0, 3000, 3)
    vectors[redo] = around(len(redo))
    store.add([ids[i] for i in redo], vectors[redo], [ids[i] for i in redo], [meta(int(i) // 20) for i in redo])
    for i in rng.choice(3000, size=300, replace=False):
        hits = store.recall(vectors[i], agent_id=int(i) // 20, k=3)
        assert hits[0].id == ids[i] and hits[0].distance == pytest.approx(0.0, abs=1e-5)
        assert [h.distance for h in hits] == sorted(h.distance for h in hits)


def test_reopen_reads_back_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    first = open_store(path, COLLECTION)
    vectors = fill(first)
    again = open_store(path, COLLECTION)  # a second client on the same folder
    assert again.count() == 8
    assert [r.id for r in again.recall(vectors["a1-close"], agent_id=1, k=1)] == ["a1-close"]
    other = open_store(path, "memories-other")  # collections are separate
    assert other.count() == 0


def test_open_store_needs_a_path() -> None:
    with pytest.raises(ValueError, match="needs a path"):
        open_store(None, COLLECTION)


# --------------------------------------------------------------------------------------------- writer


def test_writer_reports_errors_on_flush_with_the_process_traceback(tmp_path: Path) -> None:
    writer = MemoryWriter(StoreSpec(tmp_path / "chroma", COLLECTION), factory())
    # Item index 7 does not exist in the factory: the writer process fails on this batch.
    writer.add(cols(agent=[0], reason=[0], polarity=[1], item=[7], created=[0], strength=[1.0], last=[0]))
    with pytest.raises(MemoryWriterError) as info:
        writer.flush()
    err = info.value
    assert isinstance(err, RuntimeError)
    assert err.summary == (
        f"memory writer of collection {COLLECTION} in {tmp_path / 'chroma'}: "
        "adding 1 records failed: IndexError: list index out of range"
    )
    # The traceback comes from the writer process: it names the factory's line that failed.
    assert err.child_traceback is not None and "records.py" in err.child_traceback
    assert err.child_traceback.rstrip().endswith("IndexError: list index out of range")
    assert str(err).startswith(err.summary) and err.child_traceback.rstrip() in str(err)
    writer.add(cols(agent=[1], reason=[1], polarity=[1], item=[0], created=[0], strength=[1.0], last=[0]))
    with pytest.raises(MemoryWriterError, match="adding 1 records failed: IndexError"):
        writer.flush()  # the failure sticks; later batches are not applied
    with pytest.raises(MemoryWriterError, match="adding 1 records failed: IndexError"):
        writer.close()
    assert writer.closed and not _writers_alive()
    assert writer.stats.records_added == 0
    assert open_store(tmp_path / "chroma", COLLECTION).count() == 0


def _writers_alive() -> list[mp.process.BaseProcess]:
    return [p for p in mp.active_children() if p.name.startswith("memory-writer-")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("shards", [1, 2])
def test_a_writer_killed_mid_run_makes_flush_raise_at_once(tmp_path: Path, shards: int) -> None:
    writer = MemoryWriter(StoreSpec(tmp_path / "memory", COLLECTION, shards=shards), factory())
    writer.add(many(10))
    assert writer.flush().records_in_store == 40
    writer.add(many(20_000))  # 80,000 records queued: the writers are busy when one is killed
    victim = _writers_alive()[-1]
    os.kill(victim.pid, signal.SIGKILL)
    writer.add(many(20_000))  # sending to a dead process does not block
    started = time.monotonic()
    with pytest.raises(MemoryWriterError, match=r"the process ended unexpectedly \(killed by SIGKILL\)") as info:
        writer.flush()
    assert info.value.child_traceback is None
    with pytest.raises(MemoryWriterError, match="killed by SIGKILL"):
        writer.close()  # still reported; every process is stopped all the same
    assert time.monotonic() - started < 20
    assert writer.closed and not _writers_alive()


def test_a_writer_that_cannot_open_its_store_says_so(tmp_path: Path) -> None:
    (tmp_path / "memory").write_text("a file where the store's folder should be")
    with MemoryWriter(StoreSpec(tmp_path / "memory", COLLECTION), factory()) as writer:
        with pytest.raises(MemoryWriterError) as info:
            writer.ready()
        assert info.value.summary.startswith(
            f"memory writer of collection {COLLECTION} in {tmp_path / 'memory'}: opening the store failed: "
        )
        assert info.value.child_traceback is not None and "open_store" in info.value.child_traceback
        writer.add(many(2))
        with pytest.raises(MemoryWriterError, match="opening the store failed"):
            writer.flush()  # later round trips report it too; the commands are not applied
        writer.abort()
    assert writer.closed and not _writers_alive()


def test_ready_waits_for_the_store_to_open(tmp_path: Path) -> None:
    with MemoryWriter(StoreSpec(tmp_path / "memory", COLLECTION, shards=2), factory()) as writer:
        writer.ready()
        assert [p.path.is_dir() for p in StoreSpec(tmp_path / "memory", COLLECTION, shards=2).parts()] == [True, True]
        writer.add(many(3))
    assert writer.closed and not _writers_alive()
    assert writer.stats.records_in_store == 12  # leaving the block normally applied everything sent


@pytest.mark.timeout(60)
def test_leaving_the_block_on_an_error_aborts_and_keeps_what_was_flushed(tmp_path: Path) -> None:
    spec = StoreSpec(tmp_path / "memory", COLLECTION)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), MemoryWriter(spec, factory()) as writer:
        writer.add(many(10))
        writer.flush()
        writer.add(many(25_000))  # 100,000 records still queued when the run fails
        raise KeyboardInterrupt
    assert time.monotonic() - started < 30  # far less than writing what was queued
    assert writer.closed and not _writers_alive()
    store = open_store(spec.path, COLLECTION)
    assert {f"a{a}-r{r}-L" for a in range(10) for r in range(4)} <= set(store.ids())
    assert store.count() < 100_000


_ORPHANING = """
import multiprocessing, os, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from memory_samples import factory, many
from tastesim.memory.store import StoreSpec
from tastesim.memory.writer import MemoryWriter

writer = MemoryWriter(StoreSpec(Path(sys.argv[1]), "orphans", shards=2), factory())
writer.ready()
writer.add(many(20_000))  # queued, not yet written, when the run dies
print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.timeout(60)
def test_writers_exit_when_the_run_is_killed(tmp_path: Path) -> None:
    # A writer outliving its run would go on writing into a store that the resumed run is reconciling.
    log, errors = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(log, "w") as out, open(errors, "w") as err:  # files, not pipes: the writers' exit is not waited on
        args = [sys.executable, "-c", _ORPHANING, str(tmp_path / "memory"), str(Path(__file__).parent)]
        result = subprocess.run(args, stdout=out, stderr=err, timeout=50, check=False)
    assert result.returncode == -signal.SIGKILL, errors.read_text()[-2000:]
    pids = [int(pid) for pid in log.read_text().split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    try:
        while any(_running(pid) for pid in pids):
            assert time.monotonic() < deadline, "the writers outlived their run"
            time.sleep(0.05)
    finally:
        for pid in filter(_running, pids):
            os.kill(pid, signal.SIGKILL)
    assert open_store(tmp_path / "memory" / "shard-0", "orphans-shard-0").count() < 40_000


# A user's script with no ``if __name__ == "__main__":`` guard: each spawned writer imports it again and dies
# starting writers of its own. The reason vectors are megabytes, as for a real catalog.
_UNGUARDED = """
import sys
from dataclasses import replace
from pathlib import Path
import numpy as np
sys.path.insert(0, {tests!r})
from memory_samples import factory
from tastesim.memory.protocol import MemoryWriterError
from tastesim.memory.store import StoreSpec
from tastesim.memory.writer import MemoryWriter

texts = [f"reason {{k}}" for k in range(4_000)]
made = replace(factory(), reason_texts=texts, reason_vectors=np.ones((4_000, 384), dtype=np.float32))
try:
    with MemoryWriter(StoreSpec(Path({memory!r}), "unguarded", shards=2), made) as writer:
        writer.ready()
except MemoryWriterError as err:
    print(err, flush=True)
    sys.exit(3)
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_script_without_a_main_guard_gets_a_message_instead_of_a_hang(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(_UNGUARDED.format(tests=str(Path(__file__).parent), memory=str(tmp_path / "memory")))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=100, check=False)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "ended unexpectedly" in result.stdout and 'if __name__ == "__main__":' in result.stdout


def test_add_inserts_new_ids_and_overwrites_known_ones(store: MemoryStore) -> None:
    made = factory()
    known: set[str] = set()
    first = cols(agent=[3], reason=[0], polarity=[1], item=[0], created=[1], strength=[1.0], last=[1])
    made.add(store, first, known)
    assert known == {"a3-r0-L"}
    # The same memory formed again later (after eviction from working memory): the record is replaced.
    again = cols(
        agent=[3, 3], reason=[0, 1], polarity=[1, 1], item=[1, 1], created=[6, 6], strength=[1.0, 1.0], last=[6, 6]
    )
    made.add(store, again, known)
    records = {r.id: (r.item_id, r.step) for r in store.get(agent_id=3)}
    assert records == {"a3-r0-L": (made.item_ids[1], 6), "a3-r1-L": (made.item_ids[1], 6)}


def test_unsharded_spec_is_one_collection_in_its_folder(tmp_path: Path) -> None:
    spec = StoreSpec(tmp_path / "memory", COLLECTION)
    assert spec.parts() == [spec]
    assert isinstance(spec.open(), MemoryStore)
    server = StoreSpec(None, COLLECTION, "http://127.0.0.1:8000", shards=2)
    assert [(p.path, p.collection, p.server) for p in server.parts()] == [
        (None, f"{COLLECTION}-shard-0", "http://127.0.0.1:8000"),
        (None, f"{COLLECTION}-shard-1", "http://127.0.0.1:8000"),
    ]
