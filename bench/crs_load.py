"""Load on the built-in CRSs: sessions/s, requests/s, latency and client-side overhead per turn.

Starts ``tastesim serve-crs --kind KIND`` as its own process on a free 127.0.0.1 port (so client and server
do not share a GIL), then runs the conversation stress runner at each concurrency with as many sessions as
concurrent slots, and prints one row per CRS and size. The client-side overhead per turn is the time a turn
spends outside its HTTP request: writing the query, checking it, building the request, deciding on the slate.
The LLM CRS (the embedded model naming items, two llama.cpp slots) is measured at its own, small sizes.

Usage: python bench/crs_load.py [--crs retrieval llm] [--sizes 100 1000] [--llm-sizes 2 8]
       [--embedder hashing|minilm] [--decider logical|distilled] [--turns 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import httpx
import yaml

from tastesim.runs.converse import run_conversations
from tastesim.scenario import Scenario


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(folder: Path, embedder: str, kind: str) -> tuple[subprocess.Popen, str]:
    """Start ``tastesim serve-crs --kind KIND`` on ML-100K and wait until it answers."""
    config = folder / "crs.yaml"
    config.write_text(yaml.safe_dump({"analyser": {"embedder": embedder}}), encoding="utf-8")
    port = _free_port()
    command = ["serve-crs", str(config), "--port", str(port), "--kind", kind]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tastesim.cli import main; main()", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("tastesim serve-crs exited; run it by hand to see why")
        try:
            httpx.get(url + "/health", timeout=2).raise_for_status()
            return proc, url + "/recommend"
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit("tastesim serve-crs did not start within 600 s")


def main() -> None:
    """Parse arguments, serve the CRS, run each size and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crs", nargs="+", choices=["retrieval", "popularity", "llm"], default=["retrieval", "llm"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--llm-sizes", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--embedder", choices=["hashing", "minilm"], default="hashing")
    parser.add_argument("--decider", choices=["logical", "vote", "learned", "distilled"], default="logical")
    parser.add_argument("--turns", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tastesim-crs-bench-") as tmp:
        for kind in args.crs:
            proc, url = _serve(Path(tmp), args.embedder, kind)
            try:
                for size in args.llm_sizes if kind == "llm" else args.sizes:
                    _run(Path(tmp), url, kind, size, args)
            finally:
                proc.terminate()
                proc.wait(timeout=30)


def _run(tmp: Path, url: str, kind: str, size: int, args: argparse.Namespace) -> None:
    """Hold ``size`` sessions, ``size`` at once, against the CRS at ``url``, and print their figures."""
    scenario = Scenario.model_validate(
        {
            "name": f"crs-load-{kind}-{size}",
            "seed": 1,
            "analyser": {"embedder": args.embedder},
            "decision": {"model": args.decider},
            "conversation": {
                "crs_url": url,
                "sessions": size,
                "concurrency": size,
                "turns": args.turns,
                "timeout_s": 300,
                "transcripts": 0,
                "max_seconds": 1800,
                "recall": "working",
            },
        }
    )
    report = run_conversations(scenario, tmp / f"run-{kind}-{size}").summary["conversation"]
    lat, thr = report["latency_ms"], report["throughput"]
    print(
        f"crs={kind:<10} concurrent={size:>5} sessions={report['sessions_finished']:>5} turns={report['turns']:>5} "
        f"sessions/s={thr['sessions_per_second']:>7} requests/s={thr['requests_per_second']:>7} "
        f"latency_ms p50={lat['p50']} p95={lat['p95']} p99={lat['p99']} "
        f"client_overhead_ms/turn={report['client_overhead_ms_per_turn']} "
        f"errors={sum(report['errors'].values())} recall@10_last_turn={report['recall']['@10'][-1]} "
        f"writer_calls/message={report['writer']['calls_per_interaction']}",
        flush=True,
    )


if __name__ == "__main__":
    main()
