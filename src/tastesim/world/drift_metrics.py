"""Drift metrics per step and per population segment, and the segment labels they are split by.

Every figure is computed for the whole population (segment ``all``) and for each value of each segment
attribute; one row per (step, attribute, segment):

* ``category_js_start`` / ``category_js_prev``: Jensen-Shannon divergence (bits, 0..1) of the segment's
  mean interest category distribution from step 0 / from the previous step.
* ``centroid_shift``: mean ``1 - cos`` between each agent's interest centroid and its step-0 centroid;
  ``centroid_step`` the same against the previous step.
* ``consumption_entropy``: entropy (bits) of the primary categories of the items clicked this step.
* ``intra_list_distance``: mean pairwise ``1 - cos`` of the items within a slate, averaged over slates.
* ``exposure_gini``: Gini coefficient of how often each catalog item was shown this step (1 = all
  exposure on one item).
* ``like_rate``: likes / clicks.
* ``filter_bubble``: mean over agents of ``1 - H(categories_t) / H(categories_0)``: how much each agent's
  interest distribution has narrowed since step 0 (0 = as broad as at the start, 1 = a single category).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tastesim.agents.drift import InterestState, unit_rows
from tastesim.agents.population import Population
from tastesim.catalog import Decisions

__all__ = [
    "DRIFT_METRICS",
    "FIXED",
    "METRIC_HELP",
    "DriftPartial",
    "DriftTracker",
    "Groups",
    "ShardDrift",
    "drift_headline",
    "entropy_bits",
    "fixed",
    "gini",
    "intra_list_distance",
    "item_similarity",
    "js_divergence",
    "partial_of_states",
    "segment_labels",
]

DRIFT_METRICS = (
    "agents",
    "category_js_start",
    "category_js_prev",
    "centroid_shift",
    "centroid_step",
    "consumption_entropy",
    "intra_list_distance",
    "exposure_gini",
    "like_rate",
    "filter_bubble",
)
METRIC_HELP = {
    "category_js_start": "Jensen-Shannon divergence (bits) of the mean interest category distribution from step 0",
    "category_js_prev": "the same divergence from the previous step (how fast interests are moving now)",
    "centroid_shift": "mean 1 - cosine between each agent's interest centroid and its step-0 centroid",
    "centroid_step": "mean 1 - cosine between each agent's centroid and its previous-step centroid",
    "consumption_entropy": "entropy (bits) of the primary categories of the items clicked this step",
    "intra_list_distance": "mean pairwise 1 - cosine of the items within a slate (slate diversity)",
    "exposure_gini": "Gini coefficient of item exposure this step (1 = every impression on one item)",
    "like_rate": "likes / clicks",
    "filter_bubble": "mean over agents of 1 - H(interest categories now) / H(at step 0): narrowing of tastes",
}
_AGE_BANDS = ((0, "<25"), (25, "25-34"), (35, "35-49"), (50, "50+"))


def entropy_bits(p: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits along the last axis of (unnormalised) non-negative weights."""
    p = np.asarray(p, dtype=np.float64)
    total = p.sum(-1, keepdims=True)
    q = np.divide(p, total, out=np.zeros_like(p), where=total > 0)
    return -(q * np.log2(np.where(q > 0, q, 1.0))).sum(-1)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (bits, in [0, 1]) of two distributions (normalised here)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return 0.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    return float(max(entropy_bits(m) - (entropy_bits(p) + entropy_bits(q)) / 2, 0.0))


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0 = equal, -> 1 = all on one)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    if x.size == 0 or x.sum() <= 0:
        return 0.0
    ranks = np.arange(1, x.size + 1)
    return float((2 * (ranks * x).sum()) / (x.size * x.sum()) - (x.size + 1) / x.size)


_PAIR_TABLE_ITEMS = 4096  # catalogs up to this size gather slate pairs from an item-by-item cosine table
_CHUNK = 8192  # slates per chunk of the pair gathers


def item_similarity(vectors: np.ndarray) -> np.ndarray | None:
    """Item-by-item cosine table ``(I, I)`` float32 for a small catalog, ``None`` for a large one."""
    if vectors.shape[0] > _PAIR_TABLE_ITEMS:
        return None
    return (vectors @ vectors.T).astype(np.float32)


def intra_list_distance(slates: np.ndarray, vectors: np.ndarray, similarity: np.ndarray | None = None) -> np.ndarray:
    """Per slate, mean pairwise ``1 - cos`` of its items (``-1`` slots ignored; NaN below two items).

    ``similarity`` (from :func:`item_similarity`) turns each pair into one gather; without it the pairs are
    computed from the vectors.
    """
    out = np.full(len(slates), np.nan)
    width = slates.shape[1] if slates.ndim == 2 else 0
    off_diagonal = ~np.eye(width, dtype=bool)
    for lo in range(0, len(slates), _CHUNK):
        part = slates[lo : lo + _CHUNK]
        shown = part >= 0
        items = np.where(shown, part, 0)
        if similarity is not None:
            sims = similarity[items[:, :, None], items[:, None, :]]
        else:
            v = vectors[items] * shown[..., None]
            sims = np.einsum("nsd,ntd->nst", v, v)
        pair = shown[:, :, None] & shown[:, None, :] & off_diagonal
        n_pairs = pair.sum((1, 2))
        dist = ((1 - sims) * pair).sum((1, 2))
        out[lo : lo + _CHUNK] = np.where(n_pairs > 0, dist / np.maximum(n_pairs, 1), np.nan)
    return out


def segment_labels(population: Population, by: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per attribute, the segment of each agent: ``age`` in bands, ``activity`` as training-size terciles
    (light, medium, heavy), anything else the user attribute's value (``unknown`` when missing)."""
    labels: dict[str, np.ndarray] = {}
    rows = population.user_rows
    for attribute in by:
        if attribute == "activity":
            size = np.diff(population.train.indptr)[rows]
            cuts = np.quantile(size, [1 / 3, 2 / 3]) if size.size else np.zeros(2)
            labels[attribute] = np.array(["light", "medium", "heavy"], dtype=object)[np.searchsorted(cuts, size)]
        elif attribute == "age":
            per_user = np.array([_age_band(s.get("age")) for s in population.user_segments], dtype=object)
            labels[attribute] = per_user[rows]
        else:
            per_user = np.array([s.get(attribute, "unknown") for s in population.user_segments], dtype=object)
            labels[attribute] = per_user[rows]
    return labels


def _age_band(value: str | None) -> str:
    if value is None or not value.strip().isdigit():
        return "unknown"
    age = int(value)
    return [name for low, name in _AGE_BANDS if age >= low][-1]


# -- exact sums per segment ------------------------------------------------------------------------------
# Population shards (tastesim.engine) each hold some agents; one step's drift rows add up what every shard
# measured for its agents. Sums of floats depend on the order they are added in, so each per-agent value is
# rounded once to a multiple of 2**-32 and summed as an integer: the sums are exact, and any split of the
# population into shards gives the same rows.
FIXED = float(1 << 32)


def fixed(values: np.ndarray) -> np.ndarray:
    """Per-value fixed-point integers (``round(value * 2**32)``); NaN and infinities count as 0."""
    x = np.asarray(values, dtype=np.float64)
    return np.rint(np.where(np.isfinite(x), x, 0.0) * FIXED).astype(np.int64)


@dataclass(frozen=True)
class Groups:
    """The segments drift rows are split by: group 0 is everyone, then each value of each attribute.

    Attributes:
        names: ``(attribute, segment)`` of each group.
        codes: ``(n_agents, n_attributes)`` group of each agent under each attribute.
    """

    names: list[tuple[str, str]]
    codes: np.ndarray

    @staticmethod
    def from_labels(labels: dict[str, np.ndarray], n_agents: int) -> Groups:
        """Groups of ``labels`` (see :func:`segment_labels`), values in sorted order."""
        names = [("all", "all")]
        codes = np.zeros((n_agents, len(labels)), dtype=np.int32)
        for j, (attribute, label) in enumerate(labels.items()):
            values = sorted(set(label))
            index = {v: len(names) + k for k, v in enumerate(values)}
            names += [(attribute, v) for v in values]
            codes[:, j] = [index[v] for v in label]
        return Groups(names, codes)

    def __len__(self) -> int:
        return len(self.names)

    def sums(self, codes: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Exact integer sums of ``values`` (rows of int64, one per agent of ``codes``) for every group."""
        n, n_attr = codes.shape
        member = sp.csr_matrix(
            (
                np.ones(n * (n_attr + 1), dtype=np.int64),
                (np.concatenate([np.zeros(n, dtype=np.int64), codes.T.ravel()]), np.tile(np.arange(n), n_attr + 1)),
            ),
            shape=(len(self), n),
        )
        return np.asarray(member @ values, dtype=np.int64)  # integer arithmetic: exact, any order


@dataclass(frozen=True)
class DriftPartial:
    """One shard's share of a step's drift rows: exact fixed-point sums per group (add shards with ``+``)."""

    members: np.ndarray  # (G,) agents of the group
    cats_initial: np.ndarray  # (G, C) sum of step-0 category distributions
    cats_before: np.ndarray  # (G, C) ... before this step's update
    cats_after: np.ndarray  # (G, C) ... after it
    shift: np.ndarray  # (G,) sum of 1 - cos(centroid, step-0 centroid)
    moved: np.ndarray  # (G,) sum of 1 - cos(centroid, previous centroid)
    narrowing: np.ndarray  # (G,) sum of 1 - H(categories) / H(step-0 categories), where defined
    narrowing_n: np.ndarray  # (G,) agents where it is defined
    ild: np.ndarray  # (G,) sum of intra-list distances of this step's slates
    ild_n: np.ndarray  # (G,) slates with at least two items

    def __add__(self, other: DriftPartial) -> DriftPartial:
        return DriftPartial(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


class ShardDrift:
    """Per-agent drift quantities of one shard's agents, kept up to date, and their sums per group.

    Only agents whose interests moved are recomputed each step: an agent that liked or disliked nothing
    keeps its centroid direction (its interest mass only decayed), its categories and its narrowing.

    Args:
        state: The shard's interest state (rows = the shard's agents).
        groups: The segments.
        codes: ``groups.codes`` of the shard's agents.
    """

    def __init__(self, state: InterestState, groups: Groups, codes: np.ndarray) -> None:
        self.groups = groups
        self.codes = codes
        n = len(codes)
        self.h0 = entropy_bits(state.initial_categories)
        self.members = groups.sums(codes, np.ones(n, dtype=np.int64))
        self.cats_initial = groups.sums(codes, fixed(state.initial_categories))
        self.narrowing_n = groups.sums(codes, (self.h0 > 0).astype(np.int64))
        everyone = np.arange(n)
        self.cats, self.shift, self.narrowing = self._values(state, everyone)
        self.cat_sums = groups.sums(codes, self.cats)
        self.shift_sums = groups.sums(codes, self.shift)
        self.narrowing_sums = groups.sums(codes, self.narrowing)

    def _values(
        self, state: InterestState, rows: np.ndarray, start_cos: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fixed-point categories, centroid shift and narrowing of ``rows`` (``start_cos``: their cosines to
        the step-0 centroid, when known)."""
        if start_cos is None:
            start_cos = np.einsum("nd,nd->n", unit_rows(state.mass[rows]), state.initial[rows])
        shift = fixed(1 - start_cos)
        h0 = self.h0[rows]
        ratio = entropy_bits(state.categories[rows]) / np.where(h0 > 0, h0, 1)
        return fixed(state.categories[rows]), shift, fixed(np.where(h0 > 0, 1 - ratio, 0.0))

    def refresh(self, state: InterestState, rows: np.ndarray, start_cos: np.ndarray | None = None) -> None:
        """Recompute the agents ``rows`` (ascending, distinct; their interests changed) from ``state``, and the
        group sums; ``start_cos`` are the rows' cosines to their step-0 centroid when the caller has them."""
        rows = np.asarray(rows, dtype=np.int64)
        if not rows.size:
            return
        cats, shift, narrowing = self._values(state, rows, start_cos)
        codes = self.codes[rows]
        self.cat_sums += self.groups.sums(codes, cats - self.cats[rows])
        self.shift_sums += self.groups.sums(codes, shift - self.shift[rows])
        self.narrowing_sums += self.groups.sums(codes, narrowing - self.narrowing[rows])
        self.cats[rows], self.shift[rows], self.narrowing[rows] = cats, shift, narrowing

    def category_sums(self) -> np.ndarray:
        """Sums per group of the current category distributions (take it before a step's update)."""
        return self.cat_sums.copy()

    def partial(
        self,
        cats_before: np.ndarray,
        moved_rows: np.ndarray,
        moved: np.ndarray,
        rows: np.ndarray,
        ild: np.ndarray,
    ) -> DriftPartial:
        """The shard's share of the step's rows.

        Args:
            cats_before: :meth:`category_sums` before the update.
            moved_rows: Rows whose centroid moved this step; ``moved``: their ``1 - cos(now, before)``.
            rows: The rows that acted; ``ild``: the intra-list distance of each one's slate.
        """
        defined = np.isfinite(ild)
        return DriftPartial(
            members=self.members,
            cats_initial=self.cats_initial,
            cats_before=cats_before,
            cats_after=self.cat_sums.copy(),
            shift=self.shift_sums.copy(),
            moved=self.groups.sums(self.codes[moved_rows], fixed(moved)),
            narrowing=self.narrowing_sums.copy(),
            narrowing_n=self.narrowing_n,
            ild=self.groups.sums(self.codes[rows], fixed(ild)),
            ild_n=self.groups.sums(self.codes[rows], defined.astype(np.int64)),
        )


def partial_of_states(
    groups: Groups,
    active: np.ndarray,
    slates: np.ndarray,
    *,
    before: InterestState,
    after: InterestState,
    vectors: np.ndarray,
) -> DriftPartial:
    """The share of agents whose states are ``before`` and ``after`` a step (every agent recomputed)."""
    account = ShardDrift(before, groups, groups.codes)
    cats_before = account.category_sums()
    everyone = np.arange(len(groups.codes))
    account.refresh(after, everyone)
    moved = 1 - (unit_rows(after.mass) * unit_rows(before.mass)).sum(-1)
    return account.partial(cats_before, everyone, moved, active, intra_list_distance(slates, vectors))


@dataclass
class DriftTracker:
    """Computes and keeps the drift rows of every step (checkpointed as JSON).

    Segment figures that need every agent's interest state come as a :class:`DriftPartial` (summed over
    the population's shards); figures of the slates and decisions are computed here.
    """

    labels: dict[str, np.ndarray]
    primary: np.ndarray
    vectors: np.ndarray
    categories: list[str]
    rows: list[dict] = field(default_factory=list)
    stream: list[list[float]] = field(default_factory=list)  # clicks per category per step
    n_agents: int | None = None  # the population size (known from ``labels`` when there are any)

    def __post_init__(self) -> None:
        n = len(next(iter(self.labels.values()))) if self.labels else (self.n_agents or 0)
        self.groups = Groups.from_labels(self.labels, n)

    def measure(
        self,
        step: int,
        active: np.ndarray,
        slates: np.ndarray,
        decisions: Decisions,
        *,
        before: InterestState,
        after: InterestState,
    ) -> None:
        """Record step ``step`` of a population whose whole interest state is at hand: ``before``/``after`` are
        the states around this step's update."""
        groups = self.groups
        if len(groups.codes) != after.mass.shape[0]:  # no labels: everyone is one group
            groups = Groups([("all", "all")], np.zeros((after.mass.shape[0], 0), dtype=np.int32))
        partial = partial_of_states(groups, active, slates, before=before, after=after, vectors=self.vectors)
        self.record(step, active, slates, decisions, partial)

    def record(
        self, step: int, active: np.ndarray, slates: np.ndarray, decisions: Decisions, partial: DriftPartial
    ) -> None:
        """Record step ``step`` from its slates and decisions and the population's :class:`DriftPartial`."""
        n_items, n_cat = self.vectors.shape[0], len(self.categories)
        shown = slates >= 0
        items = np.where(shown, slates, 0)
        clicked_cats = np.where(decisions.click, self.primary[items], -1)
        self.stream.append(np.bincount(clicked_cats[clicked_cats >= 0], minlength=n_cat).tolist())
        codes = self.groups.codes[active] if self.groups.codes.shape[1] else np.zeros((len(active), 0), np.int32)
        n_groups = len(self.groups)
        agents = np.zeros(n_groups, dtype=np.int64)
        clicks = np.zeros(n_groups, dtype=np.int64)
        likes = np.zeros(n_groups, dtype=np.int64)
        cats = np.zeros((n_groups, n_cat), dtype=np.int64)
        exposure = np.zeros((n_groups, n_items), dtype=np.int64)
        per_row_clicks, per_row_likes = decisions.click.sum(1), decisions.like.sum(1)
        clicked = clicked_cats >= 0
        for grouping in [np.zeros(len(active), dtype=np.int64), *codes.T]:
            agents += np.bincount(grouping, minlength=n_groups)
            clicks += np.bincount(grouping, weights=per_row_clicks, minlength=n_groups).astype(np.int64)
            likes += np.bincount(grouping, weights=per_row_likes, minlength=n_groups).astype(np.int64)
            at = np.broadcast_to(grouping[:, None], slates.shape)
            cats += np.bincount(at[clicked] * n_cat + clicked_cats[clicked], minlength=n_groups * n_cat).reshape(
                n_groups, n_cat
            )
            exposure += np.bincount(at[shown] * n_items + slates[shown], minlength=n_groups * n_items).reshape(
                n_groups, n_items
            )
        p = partial
        for g, (attribute, value) in enumerate(self.groups.names):
            self.rows.append(
                {
                    "step": step,
                    "attribute": attribute,
                    "segment": value,
                    "agents": int(agents[g]),
                    "category_js_start": js_divergence(p.cats_after[g] / FIXED, p.cats_initial[g] / FIXED),
                    "category_js_prev": js_divergence(p.cats_after[g] / FIXED, p.cats_before[g] / FIXED),
                    "centroid_shift": _ratio(p.shift[g], p.members[g]),
                    "centroid_step": _ratio(p.moved[g], p.members[g]),
                    "consumption_entropy": float(entropy_bits(cats[g])),
                    "intra_list_distance": _ratio(p.ild[g], p.ild_n[g]),
                    "exposure_gini": gini(exposure[g]),
                    "like_rate": int(likes[g]) / int(clicks[g]) if clicks[g] else 0.0,
                    "filter_bubble": _ratio(p.narrowing[g], p.narrowing_n[g]),
                }
            )

    def frame(self) -> pd.DataFrame:
        """Every row so far: one per (step, attribute, segment)."""
        return pd.DataFrame(self.rows, columns=["step", "attribute", "segment", *DRIFT_METRICS])

    def stream_frame(self) -> pd.DataFrame:
        """Clicks per (step, category) so far, long format."""
        counts = np.asarray(self.stream, dtype=np.int64).reshape(-1, len(self.categories))
        steps = np.arange(1, counts.shape[0] + 1)
        return pd.DataFrame(
            {
                "step": np.repeat(steps, len(self.categories)),
                "category": np.tile(np.asarray(self.categories, dtype=object), counts.shape[0]),
                "clicks": counts.ravel(),
            }
        )

    def state(self) -> np.ndarray:
        """The rows as one JSON string array (for the checkpoint)."""
        return np.array(json.dumps({"rows": self.rows, "stream": self.stream}))

    def restore(self, value: np.ndarray) -> None:
        """Inverse of :meth:`state`."""
        data = json.loads(str(value))
        self.rows, self.stream = data["rows"], data["stream"]


def _ratio(total: np.integer, count: np.integer) -> float:
    """The mean of fixed-point values from their exact sum and count (0.0 for none)."""
    return float(total) / FIXED / int(count) if count else 0.0


def drift_headline(frame: pd.DataFrame) -> dict[str, float]:
    """The run's drift figures for the whole population: final divergence, shift and narrowing; mean
    intra-list distance, exposure Gini and like rate (consumption entropy is the summary's category entropy)."""
    rows = frame[frame["attribute"] == "all"]
    if rows.empty:
        return {}
    last = rows.iloc[-1]
    return {
        "final_category_js_start": float(last["category_js_start"]),
        "final_centroid_shift": float(last["centroid_shift"]),
        "final_filter_bubble": float(last["filter_bubble"]),
        "mean_intra_list_distance": float(rows["intra_list_distance"].mean()),
        "mean_exposure_gini": float(rows["exposure_gini"].mean()),
        "mean_like_rate": float(rows["like_rate"].mean()),
    }
