"""Chroma write rate of the memory store: text as document or as metadata, one writer or two shards, embedded or server.

Each variant inserts the same records (random 384-d vectors, the memory store's metadata and HNSW
settings) in batches of 5,000 into fresh stores; the variants alternate, and the script prints the
records/s of each and their ratios to the first. The memory store keeps the text in metadata and writes
two shards from two processes by default (``tastesim.memory.store``, ``memory.shards``). With ``--server``
the script also starts ``chroma run`` on a loopback port and writes the same records through
``MemoryStore.add`` to it (``memory.server``), beside the embedded variants. On one machine the server
shares the cores with the writers, so this measures the protocol's cost, not a remote server's relief.

Usage: python bench/chroma_write_cost.py [--records 40000] [--rounds 2] [--server]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

from tastesim.memory.store import HNSW, StoreSpec, open_store

BATCH = 5000
VARIANTS = {  # label: (text as document, processes, on the server)
    "document, 1 process": (True, 1, False),
    "metadata, 1 process": (False, 1, False),
    "metadata, 2 shards": (False, 2, False),
}
SERVER_VARIANTS = {
    "server, 1 process": (False, 1, True),
    "server, 2 shards": (False, 2, True),
}


def _write(spec: StoreSpec, as_document: bool, lo: int, hi: int, shards: int) -> None:
    """Insert every ``shards``-th record of ``[lo, hi)`` (the agents of one shard) into the store of ``spec``."""
    if as_document:
        collection = _documents(spec)

        def put(ids: list[str], vectors: np.ndarray, texts: list[str], metas: list[dict]) -> None:
            collection.add(ids=ids, embeddings=vectors, documents=texts, metadatas=metas)
    else:
        store = open_store(spec.path, spec.collection, spec.server)  # the store's own write path (text as metadata)

        def put(ids: list[str], vectors: np.ndarray, texts: list[str], metas: list[dict]) -> None:
            store.add(ids, vectors, texts, metas, overwrite=False)

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
        put([f"a{i}-r{i % 997}" for i in part], vectors[part], texts, metas)


def _documents(spec: StoreSpec):
    """The embedded collection of ``spec``, written the Chroma way: the text as a document."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(spec.path), settings=Settings(anonymized_telemetry=False))
    return client.get_or_create_collection(spec.collection, configuration={"hnsw": HNSW}, embedding_function=None)


def _rate(spec: StoreSpec, as_document: bool, records: int) -> float:
    """Records/s of writing ``records`` into ``spec``, one process per shard (process start included)."""
    ctx = mp.get_context("spawn")
    workers = [
        ctx.Process(target=_write, args=(part, as_document, k, records, spec.shards))
        for k, part in enumerate(spec.parts())
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return records / (time.perf_counter() - started)


@contextmanager
def _chroma_server(folder: Path) -> Iterator[str]:
    """``chroma run`` on a free loopback port with its data in ``folder``; yields its URL."""
    exe = Path(sys.executable).with_name("chroma")
    command = str(exe) if exe.exists() else shutil.which("chroma")
    if command is None:
        raise SystemExit("--server needs chromadb's `chroma` executable")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    args = [command, "run", "--path", str(folder / "data"), "--port", str(port), "--host", "127.0.0.1"]
    with open(folder / "chroma.log", "wb") as log:
        server = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not _answers(f"{url}/api/v2/heartbeat"):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"chroma run did not start: see {folder / 'chroma.log'}")
                time.sleep(0.1)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


def _measure(tmp: Path, variants: dict, server: str | None, records: int, rounds: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {label: [] for label in variants}
    for round_ in range(rounds):
        for label, (as_document, processes, on_server) in variants.items():
            name = f"bench-{round_}-{label.replace(' ', '-').replace(',', '')}"
            spec = StoreSpec(None if on_server else tmp / name, name, server if on_server else None, processes)
            rates[label].append(_rate(spec, as_document, records))
    return rates


def main() -> None:
    """Alternate the variants and print their write rates."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=40000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--server", action="store_true", help="also write to a `chroma run` server started here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tastesim-chroma-") as tmp:
        if args.server:
            with _chroma_server(Path(tmp)) as url:
                rates = _measure(Path(tmp), {**VARIANTS, **SERVER_VARIANTS}, url, args.records, args.rounds)
        else:
            rates = _measure(Path(tmp), VARIANTS, None, args.records, args.rounds)
    base = np.mean(rates["document, 1 process"])
    print(f"{args.records} records per variant, {args.rounds} rounds (process start included)")
    for label, values in rates.items():
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(f"{label:<20} {np.mean(values):6.0f} rec/s  {np.mean(values) / base:4.2f}x  (runs: {runs})")


if __name__ == "__main__":
    main()
