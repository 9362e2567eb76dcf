"""Contract: one memory store interface over embedded Chroma and a real ``chroma run`` server.

Every case runs on both backends (``StoreSpec`` with a path, or with a server URL); the writer cases also
run on one shard and on two (on a server, shards are collections ``NAME-shard-K``), through the writer
processes the simulation uses. The server is started by the module on a free loopback port. Server cases
are marked slow (they use a socket); the embedded cases run in the fast tier.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from helpers import chroma_server, refused_url
from memory_samples import cols, factory, fill, meta, unit
from tastesim.memory.protocol import MemoryWriterError
from tastesim.memory.store import MemoryRecord, MemoryStore, ShardedStore, StoreSpec, open_store
from tastesim.memory.writer import MemoryWriter

SpecFor = Callable[[int], StoreSpec]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``chroma run`` process for the whole module."""
    with chroma_server(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.slow)])
def spec_for(request: pytest.FixtureRequest, tmp_path: Path) -> SpecFor:
    """``spec_for(shards)``: a store of its own on the backend under test."""

    def spec(shards: int) -> StoreSpec:
        name = f"contract-{uuid.uuid4().hex[:12]}"  # the server is shared by the module's tests
        if request.param == "server":
            return StoreSpec(None, name, request.getfixturevalue("server_url"), shards)
        return StoreSpec(tmp_path / name, name, None, shards)

    return spec


@pytest.fixture(params=[1, 2], ids=["1-shard", "2-shards"])
def shards(request: pytest.FixtureRequest) -> int:
    return request.param


@pytest.fixture
def spec(spec_for: SpecFor) -> StoreSpec:
    """One collection on the backend under test."""
    return spec_for(1)


@pytest.fixture
def store(spec: StoreSpec) -> MemoryStore:
    opened = spec.open()
    assert isinstance(opened, MemoryStore)
    return opened


# --------------------------------------------------------------------------------------------- the store


def test_add_get_count_and_ids(store: MemoryStore, spec: StoreSpec) -> None:
    fill(store)
    again = spec.open()  # a new client
    assert isinstance(again, MemoryStore)
    assert again.count() == 8
    assert sorted(again.ids()) == sorted(
        ["a1-exact", "a1-close", "a1-far", "a1-orth", "a1-dis-near", "a1-dis-far", "a2-exact", "a2-dis"]
    )
    records = {r.id: r for r in again.get(agent_id=1)}
    assert set(records) == {"a1-exact", "a1-close", "a1-far", "a1-orth", "a1-dis-near", "a1-dis-far"}
    assert records["a1-far"] == MemoryRecord("a1-far", "text of a1-far", 1, "1", "like", "Comedy", 0, 1.0, 0, None)
    assert {r.id for r in again.get(agent_id=2, polarity="dislike")} == {"a2-dis"}
    assert len(again.get(limit=3)) == 3
    assert len(again.get()) == 8


def test_recall_ranks_the_agents_own_records_by_cosine(store: MemoryStore) -> None:
    fill(store)
    query = unit((0, 1.0))
    got = store.recall(query, agent_id=1, k=6)
    assert [r.id for r in got] == ["a1-exact", "a1-dis-near", "a1-close", "a1-far", "a1-orth", "a1-dis-far"]
    assert all(r.agent_id == 1 for r in got)
    # Cosine distance = 1 - cosine similarity.
    expected = [0.0, 1 - 3 / np.sqrt(10), 1 - 1 / np.sqrt(2), 1 - 1 / np.sqrt(10), 1.0, 1 + 1 / np.sqrt(10)]
    np.testing.assert_allclose([r.distance for r in got], expected, atol=1e-4)
    assert [r.id for r in store.recall(query, agent_id=1, k=2)] == ["a1-exact", "a1-dis-near"]


def test_recall_filters_by_polarity_and_category(store: MemoryStore) -> None:
    fill(store)
    query = unit((0, 1.0))
    likes = store.recall(query, agent_id=1, k=10, polarity="like")
    assert [r.id for r in likes] == ["a1-exact", "a1-close", "a1-far", "a1-orth"]
    dislikes = store.recall(query, agent_id=1, k=10, polarity="dislike")
    assert [r.id for r in dislikes] == ["a1-dis-near", "a1-dis-far"]
    comedy = store.recall(query, agent_id=1, k=10, category="Comedy")
    assert [r.id for r in comedy] == ["a1-far", "a1-orth", "a1-dis-far"]
    both = store.recall(query, agent_id=1, k=10, polarity="like", category="Drama")
    assert [r.id for r in both] == ["a1-exact", "a1-close"]
    assert store.recall(query, agent_id=2, k=5, polarity="like", category="Comedy") == []
    assert store.recall(query, agent_id=99, k=5) == []


def test_update_changes_strength_and_keeps_other_metadata(store: MemoryStore) -> None:
    fill(store)
    store.update(["a1-close", "a2-dis"], [{"strength": 4.5, "last_step": 7}, {"strength": 0.5, "last_step": 3}])
    records = {r.id: r for r in store.get()}
    assert records["a1-close"] == MemoryRecord("a1-close", "text of a1-close", 1, "1", "like", "Drama", 0, 4.5, 7)
    assert records["a2-dis"] == MemoryRecord("a2-dis", "text of a2-dis", 2, "1", "dislike", "Drama", 0, 0.5, 3)
    assert records["a1-exact"].strength == 1.0 and records["a1-exact"].last_step == 0
    # The embedding is untouched too: recall order is unchanged.
    got = store.recall(unit((0, 1.0)), agent_id=1, k=3, polarity="like")
    assert [r.id for r in got] == ["a1-exact", "a1-close", "a1-far"]


def test_add_overwrites_an_existing_id(store: MemoryStore) -> None:
    store.add(["x"], unit((0, 1.0))[None], ["old"], [meta(1, strength=1.0)])
    store.add(["x"], unit((1, 1.0))[None], ["new"], [meta(1, strength=2.0, category="War")])
    assert store.count() == 1
    (record,) = store.get()
    assert (record.text, record.strength, record.category) == ("new", 2.0, "War")
    assert store.recall(unit((1, 1.0)), agent_id=1, k=1)[0].distance == pytest.approx(0.0, abs=1e-5)


def test_delete_after_and_ids_touched_after(store: MemoryStore) -> None:
    ids = [f"s{step}" for step in range(6)]
    vectors = np.stack([unit((step, 1.0)) for step in range(6)])
    store.add(ids, vectors, ids, [meta(0, step=step) for step in range(6)], overwrite=False)
    store.update(["s1", "s4"], [{"strength": 2.0, "last_step": 5}, {"strength": 2.0, "last_step": 6}])
    assert sorted(store.ids_touched_after(3)) == ["s1", "s4", "s5"]  # s5 was created (last_step 5) after 3
    assert sorted(store.ids_touched_after(5)) == ["s4"]
    assert store.ids_touched_after(6) == []
    store.delete_after(3)
    assert sorted(store.ids()) == ["s0", "s1", "s2", "s3"]
    assert {r.id: r.last_step for r in store.get()}["s1"] == 5
    store.delete_after(3)  # idempotent
    assert store.count() == 4


def test_drop_deletes_the_collection_only(store: MemoryStore, spec: StoreSpec) -> None:
    fill(store)
    neighbour = open_store(spec.path, f"{spec.collection}-neighbour", spec.server)  # same folder or server
    fill(neighbour)
    store.drop()
    assert spec.open().count() == 0  # opening it again gives a new, empty collection
    assert neighbour.count() == 8


def test_reconcile_restores_a_checkpoint(store: MemoryStore) -> None:
    records = factory()
    records.add(
        store,
        cols(
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
    records.update(store, cols(agent=[0, 0], reason=[0, 1], polarity=[1, 1], strength=[5.0, 2.0], last=[5, 3]))
    # Checkpoint at step 2: reason 0 had strength 1.0 (last 1), reason 1 strength 1.0 (last 2).
    checkpoint = cols(
        agent=[0, 0], reason=[0, 1], polarity=[1, 1], item=[0, 1], created=[1, 2], strength=[1.0, 1.0], last=[1, 2]
    )
    records.reconcile(store, 2, checkpoint)
    assert {r.id: (r.strength, r.last_step) for r in store.get()} == {"a0-r0-L": (1.0, 1), "a0-r1-L": (1.0, 2)}


# --------------------------------------------------------------------------------------------- the writer

FIVE = cols(  # agents 0-3; agent 3 remembers two reasons, the second formed at step 3
    agent=[0, 1, 2, 3, 3],
    reason=[0, 1, 2, 3, 0],
    polarity=[1, 1, -1, 1, -1],
    item=[0, 1, 2, 0, 1],
    created=[0, 0, 0, 1, 3],
    strength=[1.0, 1.0, 1.0, 1.0, 1.0],
    last=[0, 0, 0, 1, 3],
)
STRENGTHENED = cols(agent=[1, 2], reason=[1, 2], polarity=[1, -1], strength=[2.5, 4.0], last=[2, 2])


def test_writer_round_trip_read_back_through_a_new_client(spec_for: SpecFor, shards: int) -> None:
    spec = spec_for(shards)
    with MemoryWriter(spec, factory()) as writer:
        writer.ready()
        writer.add(FIVE)
        writer.add(cols(agent=[], reason=[], polarity=[], item=[], created=[], strength=[], last=[]))  # no-op
        writer.update(STRENGTHENED)
        stats = writer.flush()
        assert (stats.records_added, stats.records_updated, stats.records_in_store) == (5, 2, 5)
    assert writer.closed and writer.stats.records_in_store == 5

    store = spec.open()
    assert isinstance(store, ShardedStore if shards > 1 else MemoryStore) and store.count() == 5
    assert {r.id: r for r in store.get(agent_id=3)} == {
        "a3-r3-L": MemoryRecord("a3-r3-L", "strong acting", 3, "10", "like", "Action", 1, 1.0, 1),
        "a3-r0-D": MemoryRecord("a3-r0-D", "fast cars", 3, "20", "dislike", "Action", 3, 1.0, 3),
    }
    assert {r.id: r.strength for r in store.get()} == {
        "a0-r0-L": 1.0,
        "a1-r1-L": 2.5,
        "a2-r2-D": 4.0,
        "a3-r3-L": 1.0,
        "a3-r0-D": 1.0,
    }
    assert len(store.get(limit=3)) == 3 and sorted(store.ids()) == sorted(r.id for r in store.get())
    (hit,) = store.recall(factory().reason_vectors[1], agent_id=1, k=1)
    assert hit.id == "a1-r1-L" and hit.distance == pytest.approx(0.0, abs=1e-5)
    assert [r.id for r in store.recall(unit((2, 1.0)), agent_id=3, k=5, polarity="dislike")] == ["a3-r0-D"]
    if shards > 1:  # each agent's records live in its own shard
        assert [sorted({r.agent_id for r in shard.get()}) for shard in store.shards] == [[0, 2], [1, 3]]


def test_writer_reconciles_to_a_checkpoint(spec_for: SpecFor, shards: int) -> None:
    spec = spec_for(shards)
    with MemoryWriter(spec, factory()) as writer:
        writer.add(FIVE)
        writer.update(STRENGTHENED)
        writer.flush()
        # Back to the checkpoint at step 1, whose working memory held agents 1 and 3's first memories.
        writer.reconcile(
            1,
            cols(
                agent=[1, 3],
                reason=[1, 3],
                polarity=[1, 1],
                item=[1, 0],
                created=[0, 1],
                strength=[1.0, 1.0],
                last=[0, 1],
            ),
        )
        assert writer.flush().records_in_store == 4
    # Created after step 1: gone. Strengthened after it: back to the checkpoint's values when in its working
    # memory, else the latest strength stays.
    assert {r.id: (r.strength, r.last_step) for r in spec.open().get()} == {
        "a0-r0-L": (1.0, 0),
        "a1-r1-L": (1.0, 0),
        "a2-r2-D": (4.0, 2),
        "a3-r3-L": (1.0, 1),
    }


def test_writer_reset_empties_the_store(spec_for: SpecFor, shards: int) -> None:
    spec = spec_for(shards)
    with MemoryWriter(spec, factory()) as writer:
        writer.add(FIVE)
        writer.flush()
        writer.reset()
        writer.add(
            cols(
                agent=[4, 5],
                reason=[1, 2],
                polarity=[1, 1],
                item=[0, 0],
                created=[0, 0],
                strength=[1.0, 1.0],
                last=[0, 0],
            )
        )
    assert sorted(spec.open().ids()) == ["a4-r1-L", "a5-r2-L"]


@pytest.mark.slow
def test_a_writer_whose_server_is_down_says_so_at_once() -> None:
    url = refused_url("")
    with pytest.raises(MemoryWriterError) as info, MemoryWriter(StoreSpec(None, "down", url, 2), factory()) as writer:
        writer.ready()
    assert writer.closed
    assert info.value.summary.startswith("memory writer of collection down-shard-")
    assert f"on {url}: opening the store failed: " in info.value.summary
    assert "Could not connect to a Chroma server" in info.value.summary
    assert info.value.child_traceback is not None
