"""Item-analysis throughput of the embedded backend (SmolLM2-135M via xllamacpp) on ML-100K.

Prints items/s over the first N items (default 100) from an empty reply cache, the share of items with
valid LLM reasons, LLM calls and tokens, the projected time for the whole catalog (1,682 items), and the
time of a cached re-run. Usage: ``python bench/analyze_throughput.py [--items N] [--parallel P] [--model M]``;
``--model shipped`` runs the shipped Q4_1 file instead of the default Q4_0 copy, for a side-by-side figure.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from tastesim.analysis.llm_analyser import LLMAnalyser, LLMAnalyserSettings
from tastesim.catalog.profile import ItemProfile
from tastesim.data import load_dataset
from tastesim.data.dataset import Dataset
from tastesim.llm.backend import make_backend
from tastesim.llm.cache import ReplyCache
from tastesim.scenario import LlamaCppSettings


def _empty_fallback(catalog: Dataset) -> list[ItemProfile]:
    """Reason-less profiles: the benchmark counts fallbacks instead of building offline profiles."""
    rows = catalog.items[["item", "categories"]].itertuples(index=False)
    return [ItemProfile(str(item), tuple(categories), (), (), "fallback") for item, categories in rows]


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=1, help="llama.cpp slots (and analyser workers)")
    parser.add_argument("--model", default=None, help="GGUF path, or 'shipped' (default: the Q4_0 copy)")
    parser.add_argument("--max-tokens", type=int, default=None, help="default: the analyser's (64 few-shot)")
    args = parser.parse_args()
    full = load_dataset("ml-100k")
    items = full.items.head(args.items)
    dataset = Dataset(full.name, full.interactions[full.interactions["item"].isin(set(items["item"]))], items)
    backend = make_backend(LlamaCppSettings(model=args.model, parallel=args.parallel))
    backend.load()
    settings = LLMAnalyserSettings(workers=args.parallel, max_tokens=args.max_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "replies.sqlite"
        analyser = LLMAnalyser(backend, ReplyCache(cache), _empty_fallback, settings)
        analyser.analyse(dataset)
        s = analyser.stats
        rate = s.items / s.seconds
        print(f"model: {backend.model}, items: {s.items}, cores: {os.cpu_count()}, parallel: {args.parallel}")
        print(f"cold: {s.seconds:.1f} s, {rate:.2f} items/s, {s.completion_tokens / s.seconds:.1f} generated tok/s")
        print(f"valid LLM reasons: {s.valid}/{s.items} = {s.valid_share:.1%} (fell back: {s.items - s.valid})")
        print(f"LLM calls: {s.llm_calls}, tokens in/out: {s.prompt_tokens}/{s.completion_tokens}")
        print(f"projected full ML-100K catalog (1,682 items): {1682 / rate / 60:.1f} min")
        start = time.perf_counter()
        again = LLMAnalyser(backend, ReplyCache(cache), _empty_fallback, settings)
        again.analyse(dataset)
        print(f"cached re-run: {time.perf_counter() - start:.2f} s ({again.stats.llm_calls} LLM calls)")


if __name__ == "__main__":
    main()
