"""Embedded Chroma write rate: reason text as document or as metadata, one writer process or two shards.

Each variant inserts the same records (random 384-d vectors, the memory store's metadata and HNSW
settings) in batches of 5,000 into fresh folders; the variants alternate, and the script prints the
records/s of each and their ratios to the first. The memory store keeps the text in metadata and writes
two shards from two processes by default (``tastesim.memory.store``, ``memory.shards``).

Usage: python bench/chroma_write_cost.py [--records 40000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np

from tastesim.memory.store import HNSW, MemoryStore

BATCH = 5000
VARIANTS = {  # label: (text as document, processes)
    "document, 1 process": (True, 1),
    "metadata, 1 process": (False, 1),
    "metadata, 2 shards": (False, 2),
}


def _write(folder: Path, as_document: bool, lo: int, hi: int, shards: int) -> None:
    """Insert every ``shards``-th record of ``[lo, hi)`` (the agents of one shard) into ``folder``."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(folder), settings=Settings(anonymized_telemetry=False))
    store = MemoryStore(client, "bench")  # the store's own write path (text as metadata)
    collection = client.get_or_create_collection("bench", configuration={"hnsw": HNSW}, embedding_function=None)
    rows = np.arange(lo, hi, shards)
    vectors = np.random.default_rng(0).standard_normal((hi, 384)).astype(np.float32)
    phrases = ["great acting", "slow plot", "beautiful score", "weak ending", "strong cast", "dull dialogue"]
    for start in range(0, len(rows), BATCH):
        part = rows[start : start + BATCH]
        texts = [f"{phrases[i % 6]}, {phrases[(i * 5) % 6]} ({i % 700})" for i in part]
        metas = [
            {
                "agent_id": int(i),
                "item_id": str(i % 1682),
                "polarity": "like" if i % 2 else "dislike",
                "category": "Drama",
                "step": 0,
                "strength": 1.0,
                "last_step": 0,
            }
            for i in part
        ]
        ids = [f"a{i}-r{i % 997}" for i in part]
        if as_document:
            collection.add(ids=ids, embeddings=vectors[part], documents=texts, metadatas=metas)
        else:
            store.add(ids, vectors[part], texts, metas, overwrite=False)


def _rate(folder: Path, as_document: bool, processes: int, records: int) -> float:
    ctx = mp.get_context("spawn")
    workers = [
        ctx.Process(target=_write, args=(folder / f"shard-{k}", as_document, k, records, processes))
        for k in range(processes)
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return records / (time.perf_counter() - started)


def main() -> None:
    """Alternate the variants and print their write rates."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=40000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {label: [] for label in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="tastesim-chroma-") as tmp:
        for round_ in range(args.rounds):
            for label, (as_document, processes) in VARIANTS.items():
                folder = Path(tmp) / f"{round_}-{label.replace(' ', '-').replace(',', '')}"
                rates[label].append(_rate(folder, as_document, processes, args.records))
    base = np.mean(rates["document, 1 process"])
    print(f"{args.records} records per variant, {args.rounds} rounds (process start included)")
    for label, values in rates.items():
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(f"{label:<20} {np.mean(values):6.0f} rec/s  {np.mean(values) / base:4.2f}x  (runs: {runs})")


if __name__ == "__main__":
    main()
