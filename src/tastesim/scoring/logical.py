"""The method's two logical models, batched over (agent, candidate) pairs, and their simple combination.

For each pair, the agent's *scope* is its working memories whose category mask overlaps the candidate's
categories (all its memories when none does), as the method restricts history to the candidate's category.

* Keyword model: ``kw_pos`` = how many of the candidate's like keywords occur among the keywords of the
  agent's in-scope *like* memories; ``kw_neg`` = the same for dislike keywords against *dislike* memories.
* Similarity model: ``sim_pos`` = the highest cosine between a candidate like reason and an in-scope like
  memory; ``sim_neg`` = the same for dislike reasons against dislike memories (0 when a side is empty).
* Rule: each model votes +1 (pos > neg), -1 (pos < neg) or 0; the sum decides like (> 0) or dislike
  (< 0); a zero sum is a tie, broken by the step's seeded generator: like with probability ``tie_like``.
* Click: the agent clicks with probability ``sigmoid((appeal - click_threshold) / click_temperature)``,
  where appeal is the mean, over the candidate's like reasons, of their best similarity to in-scope like
  memories. Only clicked items are judged like/dislike; the rest are skipped.

Everything is a gather from precomputed catalog tables (reason-by-reason cosine, item-by-reason keyword
hit bits), so the cost per pair is O(memory size) with no text, embedding arithmetic or store access.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tastesim.catalog.decisions import Decisions, PairFeatures
from tastesim.catalog.tables import CatalogTables, ReasonBank
from tastesim.memory.working import DISLIKE, LIKE, WorkingMemory
from tastesim.rng import RowDraws

__all__ = ["CLICK_DRAWS", "LIKE_DRAWS", "LogicalRule", "logical_features"]

CLICK_DRAWS, LIKE_DRAWS = 0, 1  # draw channels of a decision: the click, then the like
_CHUNK = 4096  # agents per chunk: bounds the (agents, slate, reasons, memory) gather
_POPCOUNT = np.array([bin(v).count("1") for v in range(1 << 16)], dtype=np.int16)


def logical_features(
    memory: WorkingMemory, agents: np.ndarray, slates: np.ndarray, tables: CatalogTables, bank: ReasonBank
) -> PairFeatures:
    """Compute both logical models for ``slates[i]`` shown to ``agents[i]`` (slots ``-1`` are ignored)."""
    parts = [
        _features_chunk(memory, agents[s : s + _CHUNK], slates[s : s + _CHUNK], tables, bank)
        for s in range(0, len(agents), _CHUNK)
    ]
    if not parts:
        empty = np.zeros(slates.shape, dtype=np.float32)
        return PairFeatures(empty, empty, empty, empty, empty, empty.astype(bool))
    return PairFeatures.concatenate(parts)


def _features_chunk(
    memory: WorkingMemory, agents: np.ndarray, slates: np.ndarray, tables: CatalogTables, bank: ReasonBank
) -> PairFeatures:
    shown = slates >= 0
    items = np.where(shown, slates, 0)
    mem_reason = memory.reason[agents]  # (n, M)
    valid = mem_reason >= 0
    mem_safe = np.where(valid, mem_reason, 0)
    mem_pol = memory.polarity[agents]

    overlap = ((memory.category_mask[agents][:, None, :] & tables.category_mask[items][:, :, None]) != 0) & valid[
        :, None, :
    ]
    in_category = overlap.any(axis=-1)
    scope = np.where(in_category[..., None], overlap, valid[:, None, :])  # (n, S, M)
    like_scope = scope & (mem_pol == LIKE)[:, None, :]
    dislike_scope = scope & (mem_pol == DISLIKE)[:, None, :]

    like_bits, dislike_bits = tables.hit_bits(bank)
    kw_pos = _keyword_hits(like_bits, items, mem_safe, like_scope)
    kw_neg = _keyword_hits(dislike_bits, items, mem_safe, dislike_scope)

    like_best = _best_similarity(tables.like[items], mem_safe, like_scope, bank.similarity)  # (n, S, L)
    dislike_best = _best_similarity(tables.dislike[items], mem_safe, dislike_scope, bank.similarity)
    like_present = tables.like[items] >= 0
    appeal = (np.clip(like_best, 0, None) * like_present).sum(-1) / np.maximum(like_present.sum(-1), 1)
    return PairFeatures(
        kw_pos=np.where(shown, kw_pos, 0),
        kw_neg=np.where(shown, kw_neg, 0),
        sim_pos=np.where(shown, np.clip(like_best.max(-1), 0, None), 0).astype(np.float32),
        sim_neg=np.where(shown, np.clip(dislike_best.max(-1), 0, None), 0).astype(np.float32),
        appeal=np.where(shown, appeal, 0).astype(np.float32),
        in_category=in_category & shown,
    )


def _keyword_hits(bits: np.ndarray, items: np.ndarray, mem_reason: np.ndarray, scope: np.ndarray) -> np.ndarray:
    """Distinct candidate keywords found among the in-scope memories' keywords: ``(n, S)``."""
    hits = bits[items[:, :, None], mem_reason[:, None, :]]  # (n, S, M) uint16
    hits = np.bitwise_or.reduce(np.where(scope, hits, np.uint16(0)), axis=-1)
    return _POPCOUNT[hits]


def _best_similarity(
    cand_reason: np.ndarray, mem_reason: np.ndarray, scope: np.ndarray, similarity: np.ndarray
) -> np.ndarray:
    """For each candidate reason, its best cosine to an in-scope memory (``-1`` when none): ``(n, S, L)``."""
    sims = similarity[np.where(cand_reason >= 0, cand_reason, 0)[:, :, :, None], mem_reason[:, None, None, :]]
    allowed = scope[:, :, None, :] & (cand_reason >= 0)[..., None]
    return np.where(allowed, sims, np.float32(-1.0)).max(axis=-1, initial=-1.0)


@dataclass(frozen=True)
class LogicalRule:
    """The simple combination of the two logical models (see module docstring)."""

    click_threshold: float = 0.6
    click_temperature: float = 0.08
    tie_like: float = 0.5

    def decide(
        self,
        features: PairFeatures,
        shown: np.ndarray,
        draws: RowDraws,
        click_offset: np.ndarray | None = None,
    ) -> Decisions:
        """Sample click/like/dislike for every shown pair with ``draws`` (keyed by the rows' agents and the
        step); ``click_offset`` (same shape) is added to the click log-odds (interest drift)."""
        vote = np.sign(features.kw_pos - features.kw_neg) + np.sign(features.sim_pos - features.sim_neg)
        tie_break = draws.uniform(shown.shape[1], LIKE_DRAWS) < self.tie_like
        likes = np.where(vote == 0, tie_break, vote > 0)
        logit = (features.appeal - self.click_threshold) / self.click_temperature
        p_click = 1.0 / (1.0 + np.exp(-(logit if click_offset is None else logit + click_offset)))
        click = (draws.uniform(shown.shape[1], CLICK_DRAWS) < p_click) & shown
        return Decisions(click=click, like=click & likes, dislike=click & ~likes)
