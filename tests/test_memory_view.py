"""A run's memory: the shared seed store, the write-once run store, the strength log, and the view that
resolves each memory through them (embedded Chroma; the whole-run cases are in ``test_run.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memory_samples import cols, factory
from tastesim.memory.journal import MemoryJournal
from tastesim.memory.seed import ensure_seed_store, seed_key, seed_record_id, seed_spec
from tastesim.memory.store import StoreSpec, record_id
from tastesim.memory.strengths import StrengthLog, memory_key
from tastesim.memory.view import STRENGTHS_FOLDER, AgentUsers, MemoryView, parse_record_id
from tastesim.memory.working import DISLIKE, LIKE, WorkingMemory

USERS = np.array(["u7", "u9"])


def _user_memory() -> WorkingMemory:
    """User u7 likes reasons 0 and 1 and dislikes 3; user u9 likes reason 2."""
    memory = WorkingMemory(2, 4)
    memory.reason[0, :3], memory.polarity[0, :3], memory.item[0, :3] = [0, 1, 3], [LIKE, LIKE, DISLIKE], [0, 1, 2]
    memory.strength[0, :3] = [2.0, 1.0, 0.5]
    memory.reason[1, 0], memory.polarity[1, 0], memory.item[1, 0], memory.strength[1, 0] = 2, LIKE, 2, 1.5
    return memory


def test_strength_log_keeps_the_latest_entry_and_drops_newer_parts(tmp_path: Path) -> None:
    log = StrengthLog(tmp_path / "strengths", "shard-1-")
    log.write(2, cols(agent=[1, 1], reason=[4, 5], polarity=[1, -1], strength=[2.0, 3.0], last=[2, 1]))
    log.write(4, cols(agent=[1], reason=[4], polarity=[1], strength=[5.0], last=[4]))
    StrengthLog(tmp_path / "strengths", "shard-0-").write(4, cols(agent=[0], reason=[4], polarity=[1],
                                                                     strength=[9.0], last=[3]))  # fmt: skip
    latest = log.latest()
    found, strength, last = latest.lookup(memory_key(np.array([1, 1, 0, 2]), np.array([4, 5, 4, 4]),
                                                     np.array([1, -1, 1, 1])))  # fmt: skip
    assert found.tolist() == [True, True, True, False]
    assert strength[:3].tolist() == [5.0, 3.0, 9.0] and last[:3].tolist() == [4, 1, 3]
    log.drop_after(2)  # resuming from step 2: this tag's later part goes, the other tag's stays
    assert log.latest().lookup(memory_key(np.array([1]), np.array([4]), np.array([1])))[1].tolist() == [2.0]
    assert sorted(p.name for p in (tmp_path / "strengths").iterdir()) == ["shard-0-step-000004.npz",
                                                                         "shard-1-step-000002.npz"]  # fmt: skip


def test_the_seed_store_is_written_once_per_content(tmp_path: Path) -> None:
    memory, make = _user_memory(), factory()
    key = seed_key(USERS, memory, make)
    spec = seed_spec(key, tmp_path, None)
    assert spec.path == tmp_path / "seed-memories" / key and spec.collection == f"tastesim-seed-{key}"
    assert ensure_seed_store(spec, USERS, memory, make) == 4
    assert ensure_seed_store(spec, USERS, memory, make) == 0  # found complete: nothing written again
    store = spec.open()
    assert sorted(store.ids()) == sorted(["uu7-r0-L", "uu7-r1-L", "uu7-r3-D", "uu9-r2-L"])
    record = {r.id: r for r in store.get(user_id="u7")}[seed_record_id("u7", 0, LIKE)]
    assert (record.text, record.item_id, record.category, record.strength, record.agent_id) == (
        "fast cars", "10", "Action", 2.0, -1
    )  # fmt: skip
    changed = _user_memory()
    changed.strength[0, 0] = 2.5
    assert seed_key(USERS, changed, make) != key  # another content is another store
    assert [p.name for p in (tmp_path / "seed-memories").iterdir()] == [key]  # no half-built folder left


def _run_store(tmp_path: Path, shards: int = 2) -> tuple[StoreSpec, WorkingMemory]:
    """Agents 0-2 from users u7, u9, u7; agent 2 re-forms its forgotten seed ``r0-L``, agent 0 forms ``r2-L``,
    and agent 0's seeded ``r1-L`` is reinforced to 4.0 at step 3."""
    users = _user_memory()
    make = factory()
    seed = seed_spec(seed_key(USERS, users, make), tmp_path / "cache", None)
    ensure_seed_store(seed, USERS, users, make)
    index = tmp_path / "run" / "memory-index"
    AgentUsers(np.array([0, 1, 0]), USERS).save(index / "agents.npz")
    spec = StoreSpec(tmp_path / "run" / "memory", "tastesim-view", None, shards, seed, index)
    rows = np.array([0, 1, 0])
    memory = WorkingMemory(3, 4)
    memory.copy_rows(np.arange(3), users, rows)
    seeds = WorkingMemory(3, 4)
    seeds.copy_rows(np.arange(3), users, rows)
    log = StrengthLog(index / STRENGTHS_FOLDER)
    with MemoryJournal(spec, memory, make, log=log, seeds=seeds) as journal:
        journal.restart()
        memory.reason[2, 0] = -1  # agent 2 forgot its seeded r0-L ...
        change = memory.remember(agents=np.array([2, 0]), reasons=np.array([0, 2]), polarity=np.array([LIKE, LIKE]),
                                 category_mask=np.array([1, 1]), items=np.array([1, 2]), step=2)  # fmt: skip
        journal.created(change.created)  # ... and forms it again; agent 0 forms r2-L
        journal.sync(2)
        change = memory.remember(agents=np.array([0]), reasons=np.array([1]), polarity=np.array([LIKE]),
                                 category_mask=np.array([1]), items=np.array([1]), step=3,
                                 weight=np.array([3.0]))  # fmt: skip
        journal.reinforced(change.reinforced)
        stats = journal.sync(3)
    assert (stats.records_in_store, stats.records_reformed, stats.records_updated) == (2, 1, 1)
    return spec, memory


def test_the_view_resolves_each_memory_through_the_run_store_then_the_seed_store(tmp_path: Path) -> None:
    spec, memory = _run_store(tmp_path)
    view = spec.open()
    assert isinstance(view, MemoryView)
    # Agent 0: three seeded memories (one reinforced, strength from the log) and one formed in the run.
    mine = {r.id: r for r in view.get(agent_id=0)}
    assert set(mine) == {"a0-r0-L", "a0-r1-L", "a0-r3-D", "a0-r2-L"}
    assert mine["a0-r1-L"].strength == 4.0 and mine["a0-r1-L"].last_step == 3  # logged
    assert mine["a0-r0-L"].strength == 2.0 and mine["a0-r0-L"].agent_id == 0  # the seed record's own
    assert mine["a0-r2-L"].step == 2
    assert view.locate(0, 2, LIKE).store == "run" and view.locate(0, 2, LIKE).shard == 0
    assert view.locate(0, 1, LIKE).store == "seed" and view.locate(0, 1, LIKE).id == "uu7-r1-L"
    assert view.locate(0, 2, DISLIKE) is None
    # Agent 2 formed its forgotten seed again: the run record replaces the seed record.
    again = view.locate(2, 0, LIKE)
    assert again.store == "run" and again.shard == 0 and again.id == "a2-r0-L"
    assert {r.id: r.step for r in view.get(agent_id=2)}["a2-r0-L"] == 2
    assert view.count() == len(view.get()) == len(view.ids()) == 4 + 1 + 3  # agents 0, 1, 2
    assert view.get(agent_id=1, polarity="dislike") == []
    # Every working memory is held by some record, with the strength working memory has.
    for agent, slot in np.argwhere(memory.reason >= 0):
        key = (int(agent), int(memory.reason[agent, slot]), int(memory.polarity[agent, slot]))
        stored, _ = view.read(view.locate(*key))
        assert parse_record_id(stored.id)[2:] == key[1:]  # the record holds this reason and polarity
        resolved = {r.id: r for r in view.get(agent_id=int(agent))}[record_id(*key)]
        assert resolved.strength == pytest.approx(float(memory.strength[agent, slot]))
    assert parse_record_id("uab-r3-x-r12-D") == ("u", "ab-r3-x", 12, DISLIKE)


def test_recall_through_the_view_ranks_seeded_and_formed_memories_together(tmp_path: Path) -> None:
    spec, _ = _run_store(tmp_path, shards=1)
    view = spec.open()
    make = factory()
    got = view.recall(make.reason_vectors[2], agent_id=0, k=3, polarity="like")
    assert [r.id for r in got] == ["a0-r2-L", "a0-r0-L", "a0-r1-L"]  # "car chases" is "fast cars" + "explosions"
    assert got[0].distance == pytest.approx(0.0, abs=1e-6)
    drama = view.recall(make.reason_vectors[3], agent_id=0, k=5, category="Drama")  # items 2 (r3-D, r2-L)
    assert [r.id for r in drama] == ["a0-r3-D", "a0-r2-L"]
