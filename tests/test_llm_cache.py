"""The reply cache: hits, invalidation by prompt version and generation settings, and resume after a run killed
with ``kill -9``."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from tastesim.analysis.llm_analyser import LLMAnalyser, LLMAnalyserSettings
from tastesim.catalog.profile import ItemProfile
from tastesim.data.dataset import Dataset
from tastesim.llm.backend import LLMError, LLMReply
from tastesim.llm.cache import ReplyCache, cached_complete

# A reply in the few-shot line format, as the embedded model writes it (see fixtures/llm/replies.jsonl).
REPLY = " gripping plot | suspense, twists\nLike: strong cast | cast\nDislike: slow start | slow\n"


class CountingBackend:
    """Test double of LLMBackend: a fixed few-shot reply, counting calls."""

    name = "llamacpp"
    model = "double"

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay

    def complete(self, prompt: str, **options: object) -> LLMReply:
        self.calls += 1
        time.sleep(self.delay)
        return LLMReply(REPLY, len(prompt.split()), 12, self.delay)


def _no_fallback(catalog: Dataset) -> list[ItemProfile]:
    raise AssertionError("every item has LLM reasons")


def _analyser(backend: CountingBackend, path: Path) -> LLMAnalyser:
    return LLMAnalyser(backend, ReplyCache(path), _no_fallback, LLMAnalyserSettings(min_count=1, max_share=1.0))


def _distinct(dataset: Dataset) -> int:
    """Items with distinct facts: identical prompts share one cached reply."""
    return len(dataset.items[["title", "categories", "text"]].astype(str).drop_duplicates())


def test_second_run_is_served_from_cache(slice_dataset: Dataset, tmp_path: Path) -> None:
    backend = CountingBackend()
    first = _analyser(backend, tmp_path / "c.sqlite").analyse(slice_dataset)
    assert backend.calls == _distinct(slice_dataset) < slice_dataset.n_items
    again = _analyser(backend, tmp_path / "c.sqlite")
    assert again.analyse(slice_dataset) == first
    assert backend.calls == _distinct(slice_dataset)
    assert again.stats.from_cache == again.stats.cached_calls == slice_dataset.n_items and again.stats.llm_calls == 0
    assert first[0].like[0].text == "gripping plot" and first[0].like[0].keywords == ("suspense", "twist")


def test_changed_item_text_or_prompt_version_asks_again(
    slice_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = CountingBackend()
    _analyser(backend, tmp_path / "c.sqlite").analyse(slice_dataset)
    n = _distinct(slice_dataset)
    items = slice_dataset.items.copy()
    items.loc[items.index[0], "text"] = items["text"].iloc[0] + " Now restored in 4K."
    _analyser(backend, tmp_path / "c.sqlite").analyse(Dataset("x", slice_dataset.interactions, items))
    assert backend.calls == n + 1

    import tastesim.analysis.llm_analyser as module

    bumped = replace(module.load_prompt("objective_fewshot"), version="objective-fewshot-test")
    monkeypatch.setattr(module, "load_prompt", lambda name: bumped if name == "objective_fewshot" else None)
    _analyser(backend, tmp_path / "c.sqlite").analyse(slice_dataset)
    assert backend.calls == 2 * n + 1


def test_resume_after_kill_9(slice_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    script = tmp_path / "slow_run.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            from test_llm_cache import CountingBackend, _analyser
            from tastesim.data import load_dataset
            _analyser(CountingBackend(delay=0.05), __import__("pathlib").Path({str(cache)!r})).analyse(
                load_dataset(path={str(slice_dir)!r}))
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)])
    deadline = time.monotonic() + 120
    done = 0
    while done < 10 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if cache.exists():
            try:
                done = sqlite3.connect(cache).execute("SELECT COUNT(*) FROM replies").fetchone()[0]
            except sqlite3.OperationalError:
                done = 0
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    db = sqlite3.connect(cache)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
    db.close()
    from tastesim.data import load_dataset

    dataset = load_dataset(path=slice_dir)
    assert 10 <= stored < _distinct(dataset)
    backend = CountingBackend()
    profiles = _analyser(backend, cache).analyse(dataset)
    assert backend.calls == _distinct(dataset) - stored
    assert [p.item for p in profiles] == list(dataset.items["item"])


def test_zero_reviews_per_item_switches_reviews_off() -> None:
    from tastesim.data.reviews import pick_reviews

    reviews = pd.DataFrame({"item": ["a"] * 6, "rating": [1, 2, 4, 5, 5, 3], "text": [f"review {i}" for i in range(6)]})
    assert pick_reviews(reviews, 0) == {}
    picked = pick_reviews(reviews, 3)["a"]
    assert len(picked) == 3 and picked["rating"].iloc[0] == 1  # a complaint first, then the best-rated


class DriftingBackend(CountingBackend):
    """A backend whose reply changes from call to call (as parallel llama.cpp slots can for one prompt)."""

    def complete(self, prompt: str, **options: object) -> LLMReply:
        super().complete(prompt, **options)
        return LLMReply(REPLY.replace("gripping plot", f"gripping plot {self.calls}"), 1, 12, self.delay)


def test_identical_items_in_flight_together_share_the_stored_reply(slice_dataset: Dataset, tmp_path: Path) -> None:
    items = slice_dataset.items.head(1)
    twins = pd.concat([items, items.assign(item=items["item"] + "-twin")], ignore_index=True)
    catalog = Dataset("twins", slice_dataset.interactions.head(0), twins)
    backend = DriftingBackend(delay=0.2)
    settings = LLMAnalyserSettings(min_count=1, max_share=1.0, workers=2)
    first = LLMAnalyser(backend, ReplyCache(tmp_path / "c.sqlite"), _no_fallback, settings).analyse(catalog)
    assert backend.calls == 2  # both were asked at once: neither found the other's reply in the cache
    assert first[0].like == first[1].like
    again = LLMAnalyser(backend, ReplyCache(tmp_path / "c.sqlite"), _no_fallback, settings).analyse(catalog)
    assert again == first and backend.calls == 2


def test_put_keeps_the_first_reply_of_a_key(tmp_path: Path) -> None:
    cache = ReplyCache(tmp_path / "c.sqlite")
    first = cache.put("k", "llamacpp", "m", "v1", LLMReply("first", 1, 1, 0.1))
    second = cache.put("k", "llamacpp", "m", "v1", LLMReply("second", 2, 2, 0.2))
    assert first == second == cache.get("k") == LLMReply("first", 1, 1, 0.1)
    assert len(cache) == 1


def test_cached_complete_keys_by_prompt_version_and_generation_settings(tmp_path: Path) -> None:
    backend, cache = CountingBackend(), ReplyCache(tmp_path / "c.sqlite")
    first, cached = cached_complete(backend, cache, "v1", "a prompt", max_tokens=8, stop=["\n"])
    assert not cached and first.text == REPLY and backend.calls == 1
    assert cached_complete(backend, cache, "v1", "a prompt", max_tokens=8, stop=["\n"]) == (first, True)
    variants = [
        {"max_tokens": 9, "stop": ["\n"]},
        {"max_tokens": 8},
        {"max_tokens": 8, "stop": ["\n"], "seed": 1},
        {"max_tokens": 8, "stop": ["\n"], "system": "Be brief."},
        {"max_tokens": 8, "stop": ["\n"], "json_mode": True},
        {"max_tokens": 8, "stop": ["\n"], "temperature": 0.7},
    ]
    for n, generation in enumerate(variants, start=2):
        _, cached = cached_complete(backend, cache, "v1", "a prompt", **generation)  # type: ignore[arg-type]
        assert not cached and backend.calls == n, generation
    assert not cached_complete(backend, cache, "v2", "a prompt", max_tokens=8, stop=["\n"])[1]
    assert len(cache) == len(variants) + 2


class FailingBackend(CountingBackend):
    def complete(self, prompt: str, **options: object) -> LLMReply:
        super().complete(prompt, **options)
        raise LLMError("the service is down")


def test_a_failed_call_stores_nothing(tmp_path: Path) -> None:
    cache = ReplyCache(tmp_path / "c.sqlite")
    with pytest.raises(LLMError):
        cached_complete(FailingBackend(), cache, "v1", "a prompt")
    assert len(cache) == 0
