"""The LLM analyser: item profiles from an LLM's objective (facts) and subjective (reviews) analyses.

For each item: one objective call on its title, categories and description, and one subjective call per
picked review. Replies are cached (:class:`~tastesim.llm.cache.ReplyCache`) and parsed leniently; a reply
with no usable reason is retried once with another seed. Objective and subjective reasons merge into one
profile (union, as the method says); keywords are then filtered across the catalog (too rare or too common
ones dropped). An item with no usable LLM reason at all gets its offline (keyphrase) profile, counted as
a fallback.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import pandas as pd

from tastesim.catalog.profile import ItemProfile, Reason
from tastesim.data.dataset import Dataset
from tastesim.data.reviews import load_reviews, pick_reviews
from tastesim.data.split import training_reviews
from tastesim.llm.backend import LLMBackend, LLMError, make_backend
from tastesim.llm.cache import ReplyCache, cached_complete
from tastesim.llm.parsing import Analysis, distinct_reasons, fewshot_stops, parse_reply
from tastesim.prompts import Prompt, load_prompt, one_line, review_slot
from tastesim.scenario import AnalyserConfig, LlamaCppSettings, OllamaSettings

__all__ = [
    "AnalysisStats",
    "LLMAnalyser",
    "LLMAnalyserSettings",
    "Progress",
    "analyse_with_config",
    "analysis_reviews",
    "backend_for",
]

Progress = Callable[[int, int, "AnalysisStats"], None]


@dataclass(frozen=True)
class LLMAnalyserSettings:
    """Tunables of the LLM analyser.

    Attributes:
        style: ``chat`` (JSON prompts with instructions, for instruct models behind Ollama), ``fewshot``
            (completion prompts for tiny embedded models) or ``auto`` (``fewshot`` for ``llamacpp``).
        objective: Run the objective analysis (off for catalogs without facts, e.g. reviews only).
        reviews_per_item: Reviews analysed per item on the subjective path.
        max_tokens: Token limit of one objective reply (a subjective reply gets two thirds of it); ``None``
            picks by style: 64 for one-line few-shot replies, 400 for a JSON object with six reasons.
        max_reasons: Like (and dislike) reasons kept per item after merging.
        min_count: Keywords found in fewer items are dropped (too rare to match anything).
        max_share: Keywords found in a larger share of the items are dropped (too common to tell items apart).
        workers: Calls in flight at once.
        seed: Generation seed (a retry uses ``seed + 1``).
        max_failures: Failed calls in a row after which the analysis stops (the service is down).
    """

    style: Literal["auto", "chat", "fewshot"] = "auto"
    objective: bool = True
    reviews_per_item: int = 5
    max_tokens: int | None = None
    max_reasons: int = 5
    min_count: int = 2
    max_share: float = 0.3
    workers: int = 1
    seed: int = 0
    max_failures: int = 3


@dataclass
class AnalysisStats:
    """What an analysis run did."""

    items: int = 0
    from_cache: int = 0
    fell_back: int = 0
    errors: int = 0
    valid: int = 0
    llm_calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    fallback_items: list[str] = field(default_factory=list)

    @property
    def valid_share(self) -> float:
        """Share of items with at least one valid LLM reason."""
        return self.valid / self.items if self.items else 0.0


class LLMAnalyser:
    """Analyses a catalog with an :class:`~tastesim.llm.backend.LLMBackend`, through a reply cache.

    Args:
        backend: The LLM.
        cache: Reply cache shared by runs.
        fallback: Builds offline profiles for a whole catalog (called only if some item needs one).
        settings: Tunables.
    """

    def __init__(
        self,
        backend: LLMBackend,
        cache: ReplyCache,
        fallback: Callable[[Dataset], list[ItemProfile]],
        settings: LLMAnalyserSettings | None = None,
    ) -> None:
        self.backend = backend
        self.cache = cache
        self.fallback = fallback
        self.settings = settings or LLMAnalyserSettings()
        style = self.settings.style
        self.style = ("fewshot" if backend.name == "llamacpp" else "chat") if style == "auto" else style
        suffix = "_fewshot" if self.style == "fewshot" else ""
        self.objective_prompt = load_prompt("objective" + suffix)
        self.subjective_prompt = load_prompt("subjective" + suffix)
        self.max_tokens = self.settings.max_tokens or (64 if self.style == "fewshot" else 400)
        self.stats = AnalysisStats()
        self._stats_lock = threading.Lock()
        self._failures_in_row = 0

    @property
    def source(self) -> str:
        """The ``source`` written into LLM-made profiles."""
        return f"llm:{self.backend.name}:{self.backend.model}"

    def analyse(
        self, dataset: Dataset, reviews: pd.DataFrame | None = None, progress: Progress | None = None
    ) -> list[ItemProfile]:
        """Profile every item of ``dataset`` in row order; :attr:`stats` holds what it took.

        Args:
            dataset: The catalog.
            reviews: Optional ``item, rating, text`` rows for the subjective path.
            progress: Called as ``(done, total, stats)`` after each item.
        """
        start = time.perf_counter()
        self.stats = stats = AnalysisStats(items=dataset.n_items)
        picked = pick_reviews(reviews, self.settings.reviews_per_item) if reviews is not None else {}
        rows = list(dataset.items[["item", "title", "categories", "text"]].itertuples(index=False))
        with ThreadPoolExecutor(max_workers=self.settings.workers) as pool:
            results = []
            for done, result in enumerate(pool.map(lambda r: self._item(r, picked.get(str(r[0]))), rows), start=1):
                results.append(result)
                stats.seconds = time.perf_counter() - start
                if progress is not None:
                    progress(done, len(rows), stats)
        profiles = self._filter_keywords([p for p, _ in results])
        missing = [i for i, (p, _) in enumerate(results) if p is None]
        stats.valid = len(rows) - len(missing)
        stats.from_cache = sum(1 for _, all_cached in results if all_cached)
        if missing:
            offline = self.fallback(dataset)
            for i in missing:
                profiles[i] = replace(offline[i], source="fallback")
            stats.fell_back = len(missing)
            stats.fallback_items = [str(rows[i][0]) for i in missing]
        stats.seconds = time.perf_counter() - start
        return profiles  # type: ignore[return-value]  # every None was replaced above

    def _item(self, row: tuple, reviews: pd.DataFrame | None) -> tuple[ItemProfile | None, bool]:
        """One item's profile (``None`` when the LLM gave nothing usable) and whether every reply was cached.

        A failed call (after the backend's own retries) leaves the item to the fallback; several failures
        in a row mean the service is down, and the whole analysis stops with that error.
        """
        try:
            result = self._analyse_item(row, reviews)
        except LLMError:
            with self._stats_lock:
                self._failures_in_row += 1
                if self._failures_in_row >= self.settings.max_failures:
                    raise
                self.stats.errors += 1
            return None, False
        with self._stats_lock:
            self._failures_in_row = 0
        return result

    def _analyse_item(self, row: tuple, reviews: pd.DataFrame | None) -> tuple[ItemProfile | None, bool]:
        item, title, categories, text = row
        parts: list[Analysis] = []
        all_cached = True
        if self.settings.objective:
            fields = {
                "title": one_line(title, 120),
                "categories": ", ".join(categories),
                "category": categories[0],
                "description": one_line(text),
            }
            analysis, cached = self._ask(self.objective_prompt, fields, self.max_tokens)
            parts.append(analysis)
            all_cached &= cached
        for rating, review in [] if reviews is None else reviews[["rating", "text"]].itertuples(index=False):
            fields = {
                "title": one_line(title, 120),
                "rating": f"{rating:g}",
                "review": one_line(review),
                "slot": review_slot(rating),
            }
            analysis, cached = self._ask(self.subjective_prompt, fields, self.max_tokens * 2 // 3)
            parts.append(analysis)
            all_cached &= cached
        like = distinct_reasons([r for a in parts for r in a.like])[: self.settings.max_reasons]
        dislike = distinct_reasons([r for a in parts for r in a.dislike])[: self.settings.max_reasons]
        if not like and not dislike:
            return None, all_cached
        named = next((a.category for a in parts if a.category), None)
        ordered = sorted(categories, key=lambda c: c.lower() != (named or "").lower())
        return ItemProfile(str(item), tuple(ordered), tuple(like), tuple(dislike), self.source), all_cached

    def _ask(self, prompt: Prompt, fields: dict[str, str], max_tokens: int) -> tuple[Analysis, bool]:
        """Parsed reply to ``prompt`` (one retry with the next seed when nothing usable came back)."""
        all_cached = True
        analysis = Analysis()
        text, slot = prompt.render(**fields), fields.get("slot", "Like:")
        for attempt in range(2):
            analysis, cached = self._reply(prompt, text, max_tokens, self.settings.seed + attempt, slot)
            all_cached &= cached
            if analysis.valid:
                break
        return analysis, all_cached

    def _reply(self, prompt: Prompt, text: str, max_tokens: int, seed: int, slot: str) -> tuple[Analysis, bool]:
        """Cached or fresh reply to ``text``; a few-shot reply continues ``slot`` (``Like:``/``Dislike:``)."""
        chat = self.style == "chat"
        stop = None if chat else fewshot_stops(prompt)
        reply, cached = cached_complete(
            self.backend,
            self.cache,
            prompt.version,
            text,
            system=prompt.system,
            json_mode=chat,
            max_tokens=max_tokens,
            seed=seed,
            stop=stop,
        )
        with self._stats_lock:
            if cached:
                self.stats.cached_calls += 1
            else:
                self.stats.llm_calls += 1
                self.stats.prompt_tokens += reply.prompt_tokens
                self.stats.completion_tokens += reply.completion_tokens
        return parse_reply(reply.text, prefix="" if chat else slot), cached

    def _filter_keywords(self, profiles: list[ItemProfile | None]) -> list[ItemProfile | None]:
        """Drop keywords found in fewer than ``min_count`` items or in more than ``max_share`` of them."""
        counts = Counter(
            k for p in profiles if p is not None for k in {k for r in (*p.like, *p.dislike) for k in r.keywords}
        )
        ceiling = max(self.settings.min_count, self.settings.max_share * len(profiles))
        keep = {k for k, n in counts.items() if self.settings.min_count <= n <= ceiling}

        def filtered(reasons: tuple[Reason, ...]) -> tuple[Reason, ...]:
            return tuple(replace(r, keywords=tuple(k for k in r.keywords if k in keep)) for r in reasons)

        return [p if p is None else replace(p, like=filtered(p.like), dislike=filtered(p.dislike)) for p in profiles]


def backend_for(cfg: AnalyserConfig, cache_dir: Path | None = None) -> LLMBackend:
    """The LLM backend an analyser configuration names (``kind`` ``ollama`` or ``llamacpp``).

    ``cache_dir`` holds the embedded backend's Q4_0 model copy (default ``$TASTESIM_CACHE``).
    """
    if cfg.kind == "ollama":
        return make_backend(
            OllamaSettings(
                model=cfg.model,
                base_url=cfg.base_url,
                timeout=cfg.timeout_s,
                retries=cfg.retries,
                concurrency=cfg.in_flight,
            )
        )
    return make_backend(LlamaCppSettings(model=cfg.model, parallel=cfg.in_flight, cache_dir=cache_dir))


def analysis_reviews(dataset: Dataset, reviews_file: Path | None) -> pd.DataFrame | None:
    """The reviews an analysis of ``dataset`` may read: the dataset's own (a training view's, so of the
    training part only), else those of ``reviews_file``, kept to the training part when the file names
    reviewers and ``dataset`` is a training view.

    Raises:
        ValueError: ``dataset`` carries reviews but is not a training view (its held-out reviews would
            inform reasons).
    """
    if dataset.reviews is not None:
        if dataset.view_fraction is None:
            raise ValueError(
                f"dataset {dataset.name!r} carries reviews: analyse its training view "
                "(tastesim.data.training_view), so that no held-out review informs a reason"
            )
        return dataset.reviews
    if reviews_file is None:
        return None
    reviews = load_reviews(reviews_file)
    if dataset.view_fraction is not None and "user" in reviews.columns:
        return training_reviews(reviews, dataset.interactions, dataset.view_fraction)
    return reviews


def analyse_with_config(
    dataset: Dataset,
    cfg: AnalyserConfig,
    cache_dir: Path,
    fallback: Callable[[Dataset], list[ItemProfile]],
    *,
    progress: Progress | None = None,
    backend: LLMBackend | None = None,
    part: Literal["both", "objective", "subjective"] = "both",
) -> tuple[list[ItemProfile], AnalysisStats]:
    """Profile ``dataset`` as an analyser configuration says, through the reply cache in ``cache_dir``.

    ``part`` keeps one path only (an ablation): ``objective`` (item facts, no reviews) or ``subjective``
    (reviews only; an item without reviews falls back). Replies are the same cached ones either way.

    Raises:
        LLMError: When the LLM service fails repeatedly (down, wrong model, timeouts).
        DataFormatError: When the reviews file is malformed.
    """
    reviews = None if part == "objective" else analysis_reviews(dataset, cfg.reviews)
    settings = LLMAnalyserSettings(
        objective=part != "subjective" and bool(dataset.items["text"].str.strip().ne("").any()),
        reviews_per_item=cfg.reviews_per_item,
        max_tokens=cfg.max_tokens,
        min_count=cfg.keyword_min_count,
        max_share=cfg.keyword_max_share,
        workers=cfg.in_flight,
    )
    cache = ReplyCache(Path(cache_dir) / "llm-replies.sqlite")
    analyser = LLMAnalyser(backend or backend_for(cfg, Path(cache_dir)), cache, fallback, settings)
    try:
        profiles = analyser.analyse(dataset, reviews, progress)
    finally:
        cache.close()
    return profiles, analyser.stats
