"""The decision models a run can use, all behind :class:`~tastesim.scoring.decider.Decider`.

* ``logical``: the method's keyword + similarity vote (:class:`~tastesim.scoring.logical.LogicalRule`).
* ``vote``: the method's 2-of-3 vote, adding the statistical model; clicks as in ``logical``.
* ``learned``: logistic regression on the feature vector; click = interaction probability.
* ``distilled``: the small MLP over the same features (the default); its clicks see the slate (see
  :mod:`tastesim.scoring.heads`); one forward pass per step.

Every random draw comes from the rows' keyed draws passed in by the caller (one per agent and step), so a
resumed run decides exactly as an uninterrupted one, and an agent decides the same in any batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from tastesim.catalog import Decisions, PairFeatures
from tastesim.catalog.tables import CatalogTables, ReasonBank
from tastesim.memory.working import WorkingMemory
from tastesim.rng import RowDraws
from tastesim.scoring.ensemble import vote_score
from tastesim.scoring.features import PairContext, pair_features
from tastesim.scoring.heads import Heads
from tastesim.scoring.logical import CLICK_DRAWS, LIKE_DRAWS, LogicalRule, logical_features

__all__ = ["HeadDecider", "LogicalDecider", "VoteDecider"]


_VOTE_TIE_DRAWS = 2  # the vote's own tie-break channel


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp overflows for logits below about -88 (float32): 1 / inf is the right 0
        return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class LogicalDecider:
    """The keyword + similarity rule of the core slice."""

    rule: LogicalRule
    tables: CatalogTables
    bank: ReasonBank

    def decide(
        self,
        memory: WorkingMemory,
        agents: np.ndarray,
        slates: np.ndarray,
        draws: RowDraws,
        click_offset: np.ndarray | None = None,
    ) -> tuple[Decisions, PairFeatures]:
        """See :class:`~tastesim.scoring.decider.Decider`."""
        features = logical_features(memory, agents, slates, self.tables, self.bank)
        return self.rule.decide(features, slates >= 0, draws, click_offset=click_offset), features

    def for_agents(self, agents: np.ndarray) -> LogicalDecider:
        """No per-agent context: the same decider."""
        return self


@dataclass(frozen=True)
class VoteDecider:
    """2-of-3 vote of keyword, similarity and statistical models; clicks by the rule's appeal threshold."""

    rule: LogicalRule
    context: PairContext
    stat_threshold: float

    def decide(
        self,
        memory: WorkingMemory,
        agents: np.ndarray,
        slates: np.ndarray,
        draws: RowDraws,
        click_offset: np.ndarray | None = None,
    ) -> tuple[Decisions, PairFeatures]:
        """See :class:`~tastesim.scoring.decider.Decider`."""
        x, features = pair_features(memory, agents, slates, self.context)
        base = self.rule.decide(features, slates >= 0, draws, click_offset=click_offset)
        vote = vote_score(x, self.stat_threshold)
        tie = draws.uniform(slates.shape[1], _VOTE_TIE_DRAWS) < self.rule.tie_like
        likes = np.where(vote == 0, tie, vote > 0)
        click = base.click
        return Decisions(click=click, like=click & likes, dislike=click & ~likes), features

    def for_agents(self, agents: np.ndarray) -> VoteDecider:
        """See :class:`~tastesim.scoring.decider.Decider`."""
        return replace(self, context=self.context.rows(agents))


@dataclass(frozen=True)
class HeadDecider:
    """Learned ensemble or distilled scorer: clicks ~ interaction probability, likes ~ like probability."""

    heads: Heads
    context: PairContext

    def decide(
        self,
        memory: WorkingMemory,
        agents: np.ndarray,
        slates: np.ndarray,
        draws: RowDraws,
        click_offset: np.ndarray | None = None,
    ) -> tuple[Decisions, PairFeatures]:
        """See :class:`~tastesim.scoring.decider.Decider`."""
        x, features = pair_features(memory, agents, slates, self.context)
        interact, like = self.heads.logits(x, slates >= 0 if self.heads.slate else None)
        if click_offset is not None:
            interact = interact + click_offset
        click = (draws.uniform(slates.shape[1], CLICK_DRAWS) < _sigmoid(interact)) & (slates >= 0)
        likes = draws.uniform(slates.shape[1], LIKE_DRAWS) < _sigmoid(like)
        return Decisions(click=click, like=click & likes, dislike=click & ~likes), features

    def for_agents(self, agents: np.ndarray) -> HeadDecider:
        """See :class:`~tastesim.scoring.decider.Decider`."""
        return replace(self, context=self.context.rows(agents))
