"""Long-term memory on Chroma: store round trips, filtered recall, updates, and the writer process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tastesim.memory.store import MemoryRecord, MemoryStore, ShardedStore, StoreSpec, open_store, record_id
from tastesim.memory.writer import MemoryWriter, RecordFactory

DIM = 384
COLLECTION = "memories-test"


def _unit(*pairs: tuple[int, float]) -> np.ndarray:
    """A unit vector of dimension ``DIM`` with the given (axis, weight) components."""
    v = np.zeros(DIM, dtype=np.float32)
    for axis, weight in pairs:
        v[axis] = weight
    return v / np.linalg.norm(v)


def _meta(
    agent: int,
    polarity: str = "like",
    category: str = "Drama",
    *,
    step: int = 0,
    strength: float = 1.0,
    last_step: int | None = None,
    item: str = "1",
) -> dict:
    return {
        "agent_id": agent,
        "item_id": item,
        "polarity": polarity,
        "category": category,
        "step": step,
        "strength": strength,
        "last_step": step if last_step is None else last_step,
    }


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    return open_store(tmp_path / "chroma", COLLECTION)


def _fill(store: MemoryStore) -> dict[str, np.ndarray]:
    """Agent 1 holds likes and dislikes in two categories; agent 2 holds copies that must never leak."""
    rows = [
        ("a1-exact", _unit((0, 1.0)), _meta(1, "like", "Drama")),
        ("a1-close", _unit((0, 1.0), (1, 1.0)), _meta(1, "like", "Drama")),  # cos 0.707 to axis 0
        ("a1-far", _unit((0, 1.0), (1, 3.0)), _meta(1, "like", "Comedy")),  # cos 0.316
        ("a1-orth", _unit((2, 1.0)), _meta(1, "like", "Comedy")),  # cos 0
        ("a1-dis-near", _unit((0, 3.0), (1, 1.0)), _meta(1, "dislike", "Drama")),  # cos 0.949
        ("a1-dis-far", _unit((0, -1.0), (1, 3.0)), _meta(1, "dislike", "Comedy")),  # cos -0.316
        ("a2-exact", _unit((0, 1.0)), _meta(2, "like", "Drama")),
        ("a2-dis", _unit((0, 1.0)), _meta(2, "dislike", "Drama")),
    ]
    store.add(
        [r[0] for r in rows],
        np.stack([r[1] for r in rows]),
        [f"text of {r[0]}" for r in rows],
        [r[2] for r in rows],
    )
    return {r[0]: r[1] for r in rows}


def test_record_id() -> None:
    assert record_id(3, 17, 1) == "a3-r17-L"
    assert record_id(0, 2, -1) == "a0-r2-D"


def test_add_and_get(store: MemoryStore) -> None:
    _fill(store)
    assert store.count() == 8
    records = {r.id: r for r in store.get(agent_id=1)}
    assert set(records) == {"a1-exact", "a1-close", "a1-far", "a1-orth", "a1-dis-near", "a1-dis-far"}
    assert records["a1-far"] == MemoryRecord("a1-far", "text of a1-far", 1, "1", "like", "Comedy", 0, 1.0, 0, None)
    assert {r.id for r in store.get(agent_id=2, polarity="dislike")} == {"a2-dis"}
    assert len(store.get(limit=3)) == 3
    assert len(store.get()) == 8


def test_recall_ranks_by_similarity_within_agent(store: MemoryStore) -> None:
    _fill(store)
    query = _unit((0, 1.0))
    got = store.recall(query, agent_id=1, k=6)
    assert [r.id for r in got] == ["a1-exact", "a1-dis-near", "a1-close", "a1-far", "a1-orth", "a1-dis-far"]
    assert all(r.agent_id == 1 for r in got)
    # Cosine distance = 1 - cosine similarity.
    expected = [0.0, 1 - 3 / np.sqrt(10), 1 - 1 / np.sqrt(2), 1 - 1 / np.sqrt(10), 1.0, 1 + 1 / np.sqrt(10)]
    np.testing.assert_allclose([r.distance for r in got], expected, atol=1e-4)
    top2 = store.recall(query, agent_id=1, k=2)
    assert [r.id for r in top2] == ["a1-exact", "a1-dis-near"]


def test_recall_filters(store: MemoryStore) -> None:
    _fill(store)
    query = _unit((0, 1.0))
    likes = store.recall(query, agent_id=1, k=10, polarity="like")
    assert [r.id for r in likes] == ["a1-exact", "a1-close", "a1-far", "a1-orth"]
    dislikes = store.recall(query, agent_id=1, k=10, polarity="dislike")
    assert [r.id for r in dislikes] == ["a1-dis-near", "a1-dis-far"]
    comedy = store.recall(query, agent_id=1, k=10, category="Comedy")
    assert [r.id for r in comedy] == ["a1-far", "a1-orth", "a1-dis-far"]
    both = store.recall(query, agent_id=1, k=10, polarity="like", category="Drama")
    assert [r.id for r in both] == ["a1-exact", "a1-close"]
    assert all(r.polarity == "like" and r.category == "Drama" for r in both)
    assert store.recall(query, agent_id=2, k=5, polarity="like", category="Comedy") == []
    assert store.recall(query, agent_id=99, k=5) == []


def test_update_changes_strength_and_keeps_other_metadata(store: MemoryStore) -> None:
    _fill(store)
    store.update(["a1-close", "a2-dis"], [{"strength": 4.5, "last_step": 7}, {"strength": 0.5, "last_step": 3}])
    records = {r.id: r for r in store.get()}
    assert records["a1-close"] == MemoryRecord("a1-close", "text of a1-close", 1, "1", "like", "Drama", 0, 4.5, 7)
    assert records["a2-dis"] == MemoryRecord("a2-dis", "text of a2-dis", 2, "1", "dislike", "Drama", 0, 0.5, 3)
    assert records["a1-exact"].strength == 1.0 and records["a1-exact"].last_step == 0
    # The embedding is untouched too: recall order is unchanged.
    assert [r.id for r in store.recall(_unit((0, 1.0)), agent_id=1, k=3, polarity="like")] == [
        "a1-exact",
        "a1-close",
        "a1-far",
    ]


def test_add_overwrites_existing_id(store: MemoryStore) -> None:
    store.add(["x"], _unit((0, 1.0))[None], ["old"], [_meta(1, strength=1.0)])
    store.add(["x"], _unit((1, 1.0))[None], ["new"], [_meta(1, strength=2.0, category="War")])
    assert store.count() == 1
    (record,) = store.get()
    assert (record.text, record.strength, record.category) == ("new", 2.0, "War")
    assert store.recall(_unit((1, 1.0)), agent_id=1, k=1)[0].distance == pytest.approx(0.0, abs=1e-5)


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
                  [_meta(i // 20) for i in range(lo, lo + 1000)], overwrite=False)  # fmt: skip
    redo = np.arange(0, 3000, 3)
    vectors[redo] = around(len(redo))
    store.add([ids[i] for i in redo], vectors[redo], [ids[i] for i in redo], [_meta(int(i) // 20) for i in redo])
    for i in rng.choice(3000, size=300, replace=False):
        hits = store.recall(vectors[i], agent_id=int(i) // 20, k=3)
        assert hits[0].id == ids[i] and hits[0].distance == pytest.approx(0.0, abs=1e-5)
        assert [h.distance for h in hits] == sorted(h.distance for h in hits)


def test_delete_after_and_ids_touched_after(store: MemoryStore) -> None:
    ids = [f"s{step}" for step in range(6)]
    vectors = np.stack([_unit((step, 1.0)) for step in range(6)])
    store.add(ids, vectors, ids, [_meta(0, step=step) for step in range(6)])
    store.update(["s1", "s4"], [{"strength": 2.0, "last_step": 5}, {"strength": 2.0, "last_step": 6}])
    assert sorted(store.ids_touched_after(3)) == ["s1", "s4", "s5"]  # s5 was created (last_step 5) after 3
    assert sorted(store.ids_touched_after(5)) == ["s4"]
    assert store.ids_touched_after(6) == []
    store.delete_after(3)
    assert sorted(r.id for r in store.get()) == ["s0", "s1", "s2", "s3"]
    assert {r.id: r.last_step for r in store.get()}["s1"] == 5
    store.delete_after(3)  # idempotent
    assert store.count() == 4


def test_reopen_reads_back_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    first = open_store(path, COLLECTION)
    vectors = _fill(first)
    again = open_store(path, COLLECTION)  # a second client on the same folder
    assert again.count() == 8
    assert [r.id for r in again.recall(vectors["a1-close"], agent_id=1, k=1)] == ["a1-close"]
    other = open_store(path, "memories-other")  # collections are separate
    assert other.count() == 0


def test_open_store_needs_a_path() -> None:
    with pytest.raises(ValueError, match="needs a path"):
        open_store(None, COLLECTION)


# --------------------------------------------------------------------------------------------- writer


def _factory() -> RecordFactory:
    vectors = np.stack([_unit((0, 1.0)), _unit((1, 1.0)), _unit((0, 1.0), (1, 1.0)), _unit((2, 1.0))])
    return RecordFactory(
        reason_texts=["fast cars", "big explosions", "car chases", "strong acting"],
        reason_vectors=vectors,
        item_ids=["10", "20", "30"],
        item_categories=["Action", "Action", "Drama"],
    )


def _cols(**columns: list) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in columns.items()}


def test_writer_round_trip_through_a_new_client(tmp_path: Path) -> None:
    spec = StoreSpec(tmp_path / "chroma", COLLECTION)
    writer = MemoryWriter(spec, _factory())
    try:
        writer.add(
            _cols(
                agent=[0, 0, 1],
                reason=[0, 3, 2],
                polarity=[1, -1, 1],
                item=[0, 2, 1],
                created=[1, 1, 2],
                strength=[1.0, 2.0, 1.0],
                last=[1, 1, 2],
            )
        )
        writer.add(_cols(agent=[], reason=[], polarity=[], item=[], created=[], strength=[], last=[]))  # no-op
        stats = writer.flush()
        assert (stats.records_added, stats.records_updated, stats.records_in_store) == (3, 0, 3)
        writer.update(_cols(agent=[0], reason=[0], polarity=[1], strength=[3.5], last=[4]))
        stats = writer.close()
        assert (stats.records_added, stats.records_updated, stats.records_in_store) == (3, 1, 3)
        assert writer.close() == stats  # closing twice is harmless
    finally:
        writer.close()

    store = open_store(spec.path, COLLECTION)
    records = {r.id: r for r in store.get()}
    assert records == {
        "a0-r0-L": MemoryRecord("a0-r0-L", "fast cars", 0, "10", "like", "Action", 1, 3.5, 4),
        "a0-r3-D": MemoryRecord("a0-r3-D", "strong acting", 0, "30", "dislike", "Drama", 1, 2.0, 1),
        "a1-r2-L": MemoryRecord("a1-r2-L", "car chases", 1, "20", "like", "Action", 2, 1.0, 2),
    }
    # The reason vectors were stored: recall by the "car chases" vector finds it exactly.
    (hit,) = store.recall(_factory().reason_vectors[2], agent_id=1, k=1)
    assert hit.id == "a1-r2-L" and hit.distance == pytest.approx(0.0, abs=1e-5)


def test_writer_reports_errors_on_flush(tmp_path: Path) -> None:
    writer = MemoryWriter(StoreSpec(tmp_path / "chroma", COLLECTION), _factory())
    # Item index 7 does not exist in the factory: the writer process fails on this batch.
    writer.add(_cols(agent=[0], reason=[0], polarity=[1], item=[7], created=[0], strength=[1.0], last=[0]))
    with pytest.raises(RuntimeError, match="memory writer failed: IndexError"):
        writer.flush()
    writer.add(_cols(agent=[1], reason=[1], polarity=[1], item=[0], created=[0], strength=[1.0], last=[0]))
    with pytest.raises(RuntimeError, match="memory writer failed"):
        writer.flush()  # the failure sticks; later batches are not applied
    with pytest.raises(RuntimeError, match="memory writer failed"):
        writer.close()
    assert writer.stats.records_added == 0


def test_reconcile_restores_a_checkpoint(store: MemoryStore) -> None:
    factory = _factory()
    factory.add(
        store,
        _cols(
            agent=[0, 0, 0],
            reason=[0, 1, 3],
            polarity=[1, 1, -1],
            item=[0, 1, 2],
            created=[1, 2, 4],
            strength=[1.0, 1.0, 1.0],
            last=[1, 2, 4],
        ),
        known=set(),
    )
    factory.update(store, _cols(agent=[0, 0], reason=[0, 1], polarity=[1, 1], strength=[5.0, 2.0], last=[5, 3]))
    # Checkpoint at step 2: reason 0 had strength 1.0 (last 1), reason 1 strength 1.0 (last 2).
    checkpoint = _cols(
        agent=[0, 0],
        reason=[0, 1],
        polarity=[1, 1],
        item=[0, 1],
        created=[1, 2],
        strength=[1.0, 1.0],
        last=[1, 2],
    )
    factory.reconcile(store, 2, checkpoint)
    records = {r.id: (r.strength, r.last_step) for r in store.get()}
    assert records == {"a0-r0-L": (1.0, 1), "a0-r1-L": (1.0, 2)}  # a0-r3-D (created at 4) is gone


def test_add_inserts_new_ids_and_overwrites_known_ones(store: MemoryStore) -> None:
    factory = _factory()
    known: set[str] = set()
    first = _cols(agent=[3], reason=[0], polarity=[1], item=[0], created=[1], strength=[1.0], last=[1])
    factory.add(store, first, known)
    assert known == {"a3-r0-L"}
    # The same memory formed again later (after eviction from working memory): the record is replaced.
    again = _cols(
        agent=[3, 3], reason=[0, 1], polarity=[1, 1], item=[1, 1], created=[6, 6], strength=[1.0, 1.0], last=[6, 6]
    )
    factory.add(store, again, known)
    records = {r.id: (r.item_id, r.step) for r in store.get(agent_id=3)}
    assert records == {"a3-r0-L": (factory.item_ids[1], 6), "a3-r1-L": (factory.item_ids[1], 6)}


# --------------------------------------------------------------------------------------------- shards


def test_sharded_writer_splits_agents_across_shards_and_reads_back_as_one(tmp_path: Path) -> None:
    spec = StoreSpec(tmp_path / "memory", COLLECTION, shards=2)
    writer = MemoryWriter(spec, _factory())
    try:
        writer.add(
            _cols(
                agent=[0, 1, 2, 3, 3],
                reason=[0, 1, 2, 3, 0],
                polarity=[1, 1, -1, 1, -1],
                item=[0, 1, 2, 0, 1],
                created=[0, 0, 0, 1, 3],
                strength=[1.0, 1.0, 1.0, 1.0, 1.0],
                last=[0, 0, 0, 1, 3],
            )
        )
        writer.update(_cols(agent=[1, 2], reason=[1, 2], polarity=[1, -1], strength=[2.5, 4.0], last=[2, 2]))
        stats = writer.flush()
        assert (stats.records_added, stats.records_updated, stats.records_in_store) == (5, 2, 5)
        # Back to a checkpoint at step 1 whose working memory holds agent 3's first memory only.
        writer.reconcile(1, _cols(agent=[3], reason=[3], polarity=[1], item=[0], created=[1], strength=[1.0], last=[1]))
        assert writer.close().records_in_store == 4
    finally:
        writer.close()

    even, odd = (open_store(p.path, p.collection) for p in spec.parts())
    assert [p.path for p in spec.parts()] == [tmp_path / "memory" / "shard-0", tmp_path / "memory" / "shard-1"]
    assert sorted(r.agent_id for r in even.get()) == [0, 2]
    assert sorted(r.agent_id for r in odd.get()) == [1, 3]
    store = spec.open()
    assert isinstance(store, ShardedStore) and store.count() == 4
    assert {r.id: r.strength for r in store.get()} == {"a0-r0-L": 1.0, "a1-r1-L": 2.5, "a2-r2-D": 4.0, "a3-r3-L": 1.0}
    assert [r.id for r in store.get(agent_id=2)] == ["a2-r2-D"]
    assert len(store.get(limit=3)) == 3 and sorted(store.ids()) == sorted(r.id for r in store.get())
    (hit,) = store.recall(_factory().reason_vectors[1], agent_id=1, k=1)
    assert hit.id == "a1-r1-L" and hit.distance == pytest.approx(0.0, abs=1e-5)


def test_unsharded_spec_is_one_collection_in_its_folder(tmp_path: Path) -> None:
    spec = StoreSpec(tmp_path / "memory", COLLECTION)
    assert spec.parts() == [spec]
    assert isinstance(spec.open(), MemoryStore)
    server = StoreSpec(None, COLLECTION, "http://127.0.0.1:8000", shards=2)
    assert [(p.path, p.collection, p.server) for p in server.parts()] == [
        (None, f"{COLLECTION}-shard-0", "http://127.0.0.1:8000"),
        (None, f"{COLLECTION}-shard-1", "http://127.0.0.1:8000"),
    ]
