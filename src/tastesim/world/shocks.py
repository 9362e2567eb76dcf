"""Scenario shocks: events scheduled at given steps that change the catalog, the recommender or the population.

* ``launch``: items (a category or a list) are hidden from every slate until the shock's step.
* ``trend``: from the step (to ``until``), the last ``slots`` slate positions go to the trending items.
* ``switch``: the recommender under test is replaced from the step.
* ``join``: agents of a segment stay inactive until the step (a new population segment joining).
* ``perturb``: at the step, a segment's interest state is pulled toward a category.

Catalog and recommender shocks act through :class:`ShockedRecommender`, a wrapper around the recommender
under test; population shocks through :class:`ShockSchedule`, which the model calls each step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from tastesim.agents.drift import InterestState
from tastesim.catalog.tables import CatalogTables
from tastesim.recommenders import Feedback, Recommender, SlateRequest, recommender_for
from tastesim.scenario import JoinShock, LaunchShock, PerturbShock, Scenario, Shock, SwitchShock, TrendShock
from tastesim.world.shard import Perturbation

__all__ = ["ShockError", "ShockSchedule", "ShockedRecommender", "shocked_world"]


class ShockError(ValueError):
    """A shock names a category, item or segment the run does not have."""


def _targets(shock: LaunchShock | TrendShock, item_ids: Sequence[str], primary: np.ndarray, categories: list[str]):
    if shock.category is not None:
        if shock.category not in categories:
            raise ShockError(f"shock at step {shock.step}: unknown category {shock.category!r}")
        return np.flatnonzero(primary == categories.index(shock.category))
    index = {item: i for i, item in enumerate(item_ids)}
    missing = [i for i in shock.items or [] if i not in index]
    if missing:
        raise ShockError(f"shock at step {shock.step}: unknown item(s) {missing[:3]}")
    return np.array([index[i] for i in shock.items or []], dtype=np.int64)


class ShockedRecommender:
    """The recommender under test with launches, trends and switches applied (a :class:`Recommender`)."""

    def __init__(
        self,
        base: Recommender,
        shocks: Sequence[Shock],
        *,
        item_ids: Sequence[str],
        primary: np.ndarray,
        categories: list[str],
        make: Callable[[str], Recommender],
    ) -> None:
        self.switches = sorted(
            ((s.step, make(s.recommender)) for s in shocks if isinstance(s, SwitchShock)), key=_first
        )
        self.base = base
        self.launches = [(s.step, _targets(s, item_ids, primary, categories)) for s in shocks if s.kind == "launch"]
        self.trends = [(s, _targets(s, item_ids, primary, categories)) for s in shocks if isinstance(s, TrendShock)]
        self.n_items = len(item_ids)

    @property
    def name(self) -> str:
        """The base recommender's name."""
        return self.base.name

    def current(self, step: int) -> Recommender:
        """The recommender serving ``step``."""
        live = [rec for start, rec in self.switches if start <= step]
        return live[-1] if live else self.base

    def fit(self, interactions: sp.csr_matrix, rng: np.random.Generator) -> None:
        """Fit the base recommender and every recommender switched to (each from its own child generator)."""
        recommenders = (self.base, *(rec for _, rec in self.switches))
        for rec, child in zip(recommenders, rng.spawn(len(recommenders)), strict=True):
            rec.fit(interactions, child)

    def observe(self, feedback: Feedback) -> None:
        """Feedback goes to the recommender that served the step."""
        self.current(feedback.step).observe(feedback)

    def hidden(self, step: int) -> np.ndarray:
        """Bool ``(n_items,)``: items not launched yet at ``step``."""
        mask = np.zeros(self.n_items, dtype=bool)
        for start, items in self.launches:
            if step < start:
                mask[items] = True
        return mask

    def recommend(self, request: SlateRequest) -> np.ndarray:
        """Slates from the current recommender with unlaunched items blocked and trends inserted."""
        hidden = self.hidden(request.step)
        blocked = request.blocked | hidden if hidden.any() else request.blocked  # no copy when nothing is hidden
        inner = SlateRequest(request.agents, request.history, blocked, request.k, request.step, request.rng)
        slates = np.asarray(self.current(request.step).recommend(inner), dtype=np.int64)
        for shock, items in self.trends:
            if shock.step <= request.step and (shock.until is None or request.step <= shock.until) and items.size:
                slates = _insert_trend(slates, blocked, request.rng.permutation(items), min(shock.slots, request.k))
        return slates


def _first(pair: tuple) -> int:
    return pair[0]


def _insert_trend(slates: np.ndarray, blocked: np.ndarray, trending: np.ndarray, slots: int) -> np.ndarray:
    """Put each agent's first ``slots`` eligible trending items in the slate's last positions."""
    in_slate = (slates[:, :, None] == trending[None, None, :]).any(axis=1)
    eligible = ~blocked[:, trending] & ~in_slate  # (n, T)
    order = np.argsort(~eligible, axis=1, kind="stable")[:, :slots]
    picked = np.where(np.take_along_axis(eligible, order, axis=1), trending[order], -1)
    out = slates.copy()
    tail = out[:, -slots:]
    out[:, -slots:] = np.where(picked >= 0, picked, tail)
    return out


class ShockSchedule:
    """Population shocks (join, perturb) applied by the model each step.

    Args:
        shocks: The scenario's shocks (catalog and recommender shocks are ignored here).
        labels: Per segment attribute, each agent's segment (see ``segment_labels``).
        item_vectors: Unit content vector per item.
        primary: Primary category index per item.
        categories: Category names.
    """

    def __init__(
        self,
        shocks: Sequence[Shock],
        labels: dict[str, np.ndarray],
        item_vectors: np.ndarray,
        primary: np.ndarray,
        categories: list[str],
    ) -> None:
        self.joins = [(s.step, self._members(s.segment, labels, s.step)) for s in shocks if isinstance(s, JoinShock)]
        self.perturbs = []
        for s in (s for s in shocks if isinstance(s, PerturbShock)):
            if s.toward not in categories:
                raise ShockError(f"shock at step {s.step}: unknown category {s.toward!r}")
            cat = categories.index(s.toward)
            target = item_vectors[primary == cat].sum(axis=0)
            target = target / max(float(np.linalg.norm(target)), 1e-12)
            self.perturbs.append((s, self._members(s.segment, labels, s.step), cat, target.astype(np.float32)))

    @staticmethod
    def _members(segment: dict[str, str], labels: dict[str, np.ndarray], step: int) -> np.ndarray:
        n = len(next(iter(labels.values()))) if labels else 0
        members = np.ones(n, dtype=bool)
        for attribute, value in segment.items():
            if attribute not in labels:
                raise ShockError(
                    f"shock at step {step}: segment attribute {attribute!r} is not in segments.by ({', '.join(labels)})"
                )
            members &= labels[attribute] == value
        return members

    def perturbations(self) -> tuple[Perturbation, ...]:
        """The ``perturb`` shocks as population shards apply them (see :meth:`perturb`)."""
        return tuple(
            Perturbation(shock.step, members, cat, target, shock.strength)
            for shock, members, cat, target in self.perturbs
        )

    def present(self, active: np.ndarray, step: int) -> np.ndarray:
        """``active`` without the agents whose segment has not joined by ``step``."""
        absent = np.zeros(0, dtype=np.int64)
        for start, members in self.joins:
            if step < start:
                absent = np.union1d(absent, np.flatnonzero(members))
        return np.setdiff1d(active, absent) if absent.size else active

    def perturb(self, step: int, state: InterestState) -> None:
        """Apply the perturbations scheduled at exactly ``step`` to ``state`` (in place)."""
        for shock, members, cat, target in self.perturbs:
            if shock.step != step:
                continue
            centroid = state.centroid()[members]
            norm = np.linalg.norm(state.mass[members], axis=1, keepdims=True)
            moved = (1 - shock.strength) * centroid + shock.strength * target
            state.mass[members] = moved / np.maximum(np.linalg.norm(moved, axis=1, keepdims=True), 1e-12) * norm
            onehot = np.zeros(state.categories.shape[1], dtype=np.float32)
            onehot[cat] = 1.0
            state.categories[members] = (1 - shock.strength) * state.categories[members] + shock.strength * onehot


def shocked_world(
    scenario: Scenario,
    item_ids: Sequence[str],
    tables: CatalogTables,
    vectors: np.ndarray,
    labels: dict[str, np.ndarray],
    *,
    users: Sequence[str],
) -> tuple[ShockedRecommender, ShockSchedule]:
    """The scenario's recommender under test with its shocks, and its population shock schedule.

    Raises:
        ShockError: A shock names an unknown category, item or segment attribute.
    """
    config = scenario.recommender
    recommender = ShockedRecommender(
        recommender_for(config, vectors, item_ids, users),
        scenario.shocks,
        item_ids=item_ids,
        primary=tables.primary,
        categories=tables.categories,
        make=lambda name: recommender_for(config.model_copy(update={"name": name}), vectors, item_ids, users),
    )
    return recommender, ShockSchedule(scenario.shocks, labels, vectors, tables.primary, tables.categories)
