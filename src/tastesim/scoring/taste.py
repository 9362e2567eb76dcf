"""Who the user is: per-user tables learned from the training ratings, gathered per (user, item) pair.

The method's features say how good an item is and what the agent remembers; these say what *this* user
rewards or punishes, all from the ratings of the training part (no text, no LLM):

* **rating bias** (user + item, the bias baseline's own score) and **like rates**: shrunk like log-odds
  of the user's and of the item's training ratings (a lenient user, a well-liked item), relative to the
  overall like rate;
* **recent popularity**: ratings an item got in the latest quarter of the training timeline (what people
  are watching now, which the held-out future resembles more than all-time counts);
* **factorisation**: an explicit matrix factorisation of the rating residuals after user and item bias
  (``mf_like``: the user's taste for this item beyond both biases; alternating least squares), and the
  implicit-feedback ALS score of ``implicit`` (``cf_interact``: would the user rate it at all);
* **history similarity**: the item's similarity to the user's own liked, disliked, all, and
  residual-weighted (loved minus merely rated) history, and to the user's latest 5 and 20 items (what the
  user is into lately: sessions, a season's releases), in a collaborative item embedding (truncated SVD of
  the cosine-normalised item-user matrix); per user six centroids, so a pair costs six dot products;
* **user x reason affinity**: for each reason of the catalog's profiles that the user has met, the mean of
  (liked - the user's like rate) over the user's training items carrying it, shrunk; a pair reads it for
  the item's like reasons, dislike reasons and both. Reasons are the profiles' (keyphrase or LLM), so this
  is where an item analysis reaches personal taste.

Tables are indexed by the row of a user in the training matrix; every draw (ALS, SVD, MF initialisation)
comes from the generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from tastesim.scoring.biases import Biases, rating_biases

__all__ = ["TASTE_FEATURES", "TasteSettings", "TasteTables", "fit_taste", "taste_columns"]

TASTE_FEATURES = (
    "rating_bias",
    "user_like_rate",
    "item_like_rate",
    "recent_popularity",
    "mf_like",
    "cf_interact",
    "hist_like",
    "hist_dislike",
    "hist_all",
    "hist_residual",
    "hist_recent5",
    "hist_recent20",
    "affinity",
    "affinity_like",
    "affinity_dislike",
)


@dataclass(frozen=True)
class TasteSettings:
    """Hyper-parameters of the taste tables (the factorisations' sizes are tuned on validation)."""

    mf_factors: int = 32
    mf_reg: float = 10.0
    mf_iterations: int = 12
    als_factors: int = 32
    als_alpha: float = 10.0
    als_reg: float = 0.05
    als_iterations: int = 15
    embedding_dim: int = 64
    like_shrink: float = 5.0
    affinity_shrink: float = 3.0
    recent_share: float = 0.25
    recent_items: tuple[int, ...] = (5, 20)  # the latest items each recent-history centroid averages


_DENSE_AFFINITY = 32_000_000  # users x reasons up to which the affinity is one dense table (128 MB)


@dataclass(frozen=True)
class Affinity:
    """User x reason affinity: sorted keys ``user * n_reasons + reason`` and their values (sparse), and the
    same as a dense ``(users, reasons)`` table when that is small enough (a plain gather per pair)."""

    keys: np.ndarray  # (nnz,) int64, sorted
    values: np.ndarray  # (nnz,) float32
    n_reasons: int
    dense: np.ndarray | None = None  # (U, R) float32

    @staticmethod
    def build(keys: np.ndarray, values: np.ndarray, n_users: int, n_reasons: int) -> Affinity:
        """From sorted keys; dense when ``n_users * n_reasons`` is at most 32 M."""
        dense = None
        if n_users * n_reasons <= _DENSE_AFFINITY:
            dense = np.zeros(n_users * n_reasons + 1, dtype=np.float32)  # last cell: the ``-1`` reason
            dense[keys] = values
        return Affinity(keys, values, n_reasons, dense)

    def lookup(self, users: np.ndarray, reasons: np.ndarray) -> np.ndarray:
        """Affinity of ``users[...]`` (broadcast against ``reasons``) for each reason id; 0 where unknown or
        the reason is ``-1``."""
        keys = users.astype(np.int64) * self.n_reasons + np.maximum(reasons, 0)
        if self.dense is not None:
            return self.dense[np.where(reasons >= 0, keys, len(self.dense) - 1)]
        if not len(self.keys):
            return np.zeros(keys.shape, dtype=np.float32)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        found = (self.keys[at] == keys) & (reasons >= 0)
        return np.where(found, self.values[at], np.float32(0))


@dataclass(frozen=True)
class TasteTables:
    """Per-user (rows of the training matrix) and per-item tables of one training part."""

    user_like: np.ndarray  # (U,)
    item_like: np.ndarray  # (I,)
    recent: np.ndarray  # (I,)
    biases: Biases
    mf_user: np.ndarray  # (U, k)
    mf_item: np.ndarray  # (I, k)
    cf_user: np.ndarray  # (U, k2)
    cf_item: np.ndarray  # (I, k2)
    embedding: np.ndarray  # (I, d) unit rows
    history: np.ndarray  # (U, 6, d): liked, disliked, all, residual-weighted, latest 5, latest 20 centroids
    affinity: Affinity

    def mf_rating(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted rating of the biased factorisation: mean + user bias + item bias + factors."""
        b = self.biases
        return b.mean + b.user[users] + b.item[items] + _dot(self.mf_user[users], self.mf_item[items])

    def cf_score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Implicit-feedback ALS score (higher: more likely to be rated)."""
        return _dot(self.cf_user[users], self.cf_item[items])


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("...d,...d->...", a, b).astype(np.float32)


def taste_columns(
    taste: TasteTables, users: np.ndarray, items: np.ndarray, like_reasons: np.ndarray, dislike_reasons: np.ndarray
) -> list[np.ndarray]:
    """The :data:`TASTE_FEATURES` columns ``(n, S)`` for slates ``items`` ``(n, S)`` shown to ``users``
    ``(n,)`` (training-matrix rows); ``like_reasons``/``dislike_reasons`` are the items' reason ids
    ``(n, S, L)``, ``-1`` padded. Per-user vectors are gathered once per row, not once per slot."""
    vectors = taste.embedding[items]  # (n, S, d)
    sims = np.einsum("nkd,nsd->nsk", taste.history[users], vectors, optimize=True)
    row_users = users[:, None, None]
    aff_like = taste.affinity.lookup(row_users, like_reasons)
    aff_dislike = taste.affinity.lookup(row_users, dislike_reasons)
    n_like = np.maximum((like_reasons >= 0).sum(-1), 1)
    n_dislike = np.maximum((dislike_reasons >= 0).sum(-1), 1)
    shape = items.shape
    return [
        taste.biases.user[users][:, None] + taste.biases.item[items],
        np.broadcast_to(taste.user_like[users][:, None], shape),
        taste.item_like[items],
        taste.recent[items],
        np.einsum("nd,nsd->ns", taste.mf_user[users], taste.mf_item[items]),
        np.einsum("nd,nsd->ns", taste.cf_user[users], taste.cf_item[items]),
        *(sims[..., k] for k in range(sims.shape[-1])),
        (aff_like.sum(-1) + aff_dislike.sum(-1)) / (n_like + n_dislike),
        aff_like.sum(-1) / n_like,
        aff_dislike.sum(-1) / n_dislike,
    ]


def fit_taste(
    matrix: sp.csr_matrix,
    timeline: tuple[np.ndarray, np.ndarray],
    latest: np.ndarray,
    reasons: np.ndarray,
    n_reasons: int,
    *,
    like_threshold: float,
    settings: TasteSettings,
    rng: np.random.Generator,
) -> TasteTables:
    """Learn the taste tables from one training part.

    Args:
        matrix: Users x items training ratings (0 = unrated); its rows are the tables' user rows.
        timeline: ``(item index, timestamp)`` of every training rating (for recent popularity).
        latest: ``(U, n)`` each user row's latest training items, newest last, ``-1`` padded on the left
            (``n >= max(settings.recent_items)``).
        reasons: ``(I, K)`` reason ids of every item (like and dislike), ``-1`` padded.
        n_reasons: Size of the reason bank.
        like_threshold: Rating at or above which a rating is a like.
        settings: Sizes and shrinkage.
        rng: The only source of randomness (initialisations).
    """
    coo = matrix.tocoo()
    rows, cols, values = coo.row, coo.col, coo.data.astype(np.float64)
    shape = matrix.shape
    liked = values >= like_threshold
    user_like, item_like, user_rate = _like_rates(rows, cols, liked, shape, settings.like_shrink)
    biases = rating_biases(matrix)
    residual = values - biases.mean - biases.user[rows] - biases.item[cols]
    mf_user, mf_item = explicit_mf(rows, cols, residual, shape, settings=settings, rng=rng)
    cf_user, cf_item = implicit_als(matrix, settings, rng)
    embedding = item_embedding(matrix, settings.embedding_dim, rng)
    history = np.concatenate(
        [
            _centroids(rows, cols, liked, residual, embedding, n_users=shape[0]),
            _latest(latest, embedding, settings.recent_items),
        ],
        axis=1,
    )
    surprise = liked.astype(np.float64) - user_rate[rows]
    affinity = _affinity(rows, cols, surprise, reasons, n_reasons=n_reasons, shrink=settings.affinity_shrink)
    affinity = Affinity.build(affinity.keys, affinity.values, shape[0], n_reasons)
    return TasteTables(
        user_like=user_like,
        item_like=item_like,
        recent=_recent(*timeline, shape[1], settings.recent_share),
        biases=biases,
        mf_user=mf_user,
        mf_item=mf_item,
        cf_user=cf_user,
        cf_item=cf_item,
        embedding=embedding,
        history=history,
        affinity=affinity,
    )


def _like_rates(
    rows: np.ndarray, cols: np.ndarray, liked: np.ndarray, shape: tuple[int, int], shrink: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shrunk like log-odds of users and items relative to the overall rate, and the users' shrunk rates."""
    base = float(np.clip(liked.mean(), 1e-3, 1 - 1e-3)) if len(liked) else 0.5
    prior = np.log(base / (1 - base))

    def rate(index: np.ndarray, size: int) -> np.ndarray:
        n = np.bincount(index, minlength=size)
        hits = np.bincount(index, weights=liked.astype(np.float64), minlength=size)
        return (hits + shrink * base) / (n + shrink)

    user, item = rate(rows, shape[0]), rate(cols, shape[1])

    def logit(p: np.ndarray) -> np.ndarray:
        return (np.log(p / (1 - p)) - prior).astype(np.float32)

    return logit(user), logit(item), user


def _recent(items: np.ndarray, timestamps: np.ndarray, n_items: int, share: float) -> np.ndarray:
    """log(1 + ratings in the latest ``share`` of the training timeline) per item."""
    if not len(items):
        return np.zeros(n_items, dtype=np.float32)
    recent = items[timestamps >= np.quantile(timestamps, 1 - share)]
    return np.log1p(np.bincount(recent, minlength=n_items)).astype(np.float32)


def explicit_mf(
    rows: np.ndarray,
    cols: np.ndarray,
    residual: np.ndarray,
    shape: tuple[int, int],
    *,
    settings: TasteSettings,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Factors ``P (U, k)``, ``Q (I, k)`` with ``residual ~ P[u] . Q[i]`` by ridge-regularised alternating
    least squares on the observed residuals (users and items with no rating get zero factors)."""
    k = settings.mf_factors
    by_user = sp.csr_matrix((residual, (rows, cols)), shape=shape)
    by_item = by_user.T.tocsr()
    p = rng.normal(0, 0.1, (shape[0], k))
    q = rng.normal(0, 0.1, (shape[1], k))
    ridge = settings.mf_reg * np.eye(k)
    for _ in range(settings.mf_iterations):
        _solve(by_user, q, p, ridge)
        _solve(by_item, p, q, ridge)
    return p.astype(np.float32), q.astype(np.float32)


def _solve(matrix: sp.csr_matrix, fixed: np.ndarray, out: np.ndarray, ridge: np.ndarray) -> None:
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        if start == end:
            out[row] = 0.0
            continue
        f = fixed[matrix.indices[start:end]]
        out[row] = np.linalg.solve(f.T @ f + ridge, f.T @ matrix.data[start:end])


def implicit_als(
    matrix: sp.csr_matrix, settings: TasteSettings, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """User and item factors of ``implicit``'s ALS on the binary rated matrix (one thread: reproducible)."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    factors = max(1, min(settings.als_factors, min(matrix.shape) - 1))
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=settings.als_reg,
            alpha=settings.als_alpha,
            iterations=settings.als_iterations,
            random_state=int(rng.integers(0, 2**31 - 1)),
            num_threads=1,
        )
        model.fit(sp.csr_matrix(matrix > 0, dtype=np.float32), show_progress=False)
    return np.asarray(model.user_factors, dtype=np.float32), np.asarray(model.item_factors, dtype=np.float32)


def item_embedding(matrix: sp.csr_matrix, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Unit item vectors ``(I, d)`` from a truncated SVD of the cosine-normalised item x user matrix
    (two items are close when the same users rated them); items no one rated get zero vectors."""
    from scipy.sparse.linalg import svds

    rated = sp.csc_matrix(matrix > 0, dtype=np.float64)
    norms = np.sqrt(np.asarray(rated.sum(axis=0)).ravel())
    scaled = (rated @ sp.diags(1.0 / np.maximum(norms, 1.0))).T.tocsr()
    k = min(dim, min(scaled.shape) - 1)
    if k < 1:
        return np.zeros((matrix.shape[1], max(dim, 1)), dtype=np.float32)
    u, s, _ = svds(scaled, k=k, random_state=rng, v0=rng.uniform(-1, 1, min(scaled.shape)))
    vectors = u * s
    return (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)).astype(np.float32)


def _centroids(
    rows: np.ndarray, cols: np.ndarray, liked: np.ndarray, residual: np.ndarray, embedding: np.ndarray, *, n_users: int
) -> np.ndarray:
    """Per user, mean item vector of its liked, disliked and all training items, and residual-weighted mean."""
    out = np.zeros((n_users, 4, embedding.shape[1]), dtype=np.float64)
    for slot, mask, weight in (
        (0, liked, None),
        (1, ~liked, None),
        (2, np.ones_like(liked), None),
        (3, np.ones_like(liked), residual),
    ):
        vectors = embedding[cols[mask]] * (1.0 if weight is None else weight[mask][:, None])
        np.add.at(out[:, slot], rows[mask], vectors)
        out[:, slot] /= np.maximum(np.bincount(rows[mask], minlength=n_users), 1)[:, None]
    return out.astype(np.float32)


def _latest(latest: np.ndarray, embedding: np.ndarray, sizes: tuple[int, ...]) -> np.ndarray:
    """Per user, the mean vector of its latest ``n`` items for each ``n`` in ``sizes``: ``(U, len(sizes), d)``."""
    out = np.zeros((len(latest), len(sizes), embedding.shape[1]), dtype=np.float32)
    for slot, n in enumerate(sizes):
        items = latest[:, -n:]
        present = items >= 0
        vectors = np.where(present[..., None], embedding[np.maximum(items, 0)], 0).sum(axis=1)
        out[:, slot] = vectors / np.maximum(present.sum(axis=1), 1)[:, None]
    return out


def _affinity(
    rows: np.ndarray,
    cols: np.ndarray,
    surprise: np.ndarray,
    reasons: np.ndarray,
    *,
    n_reasons: int,
    shrink: float,
) -> Affinity:
    """Sum of (liked - user's like rate) over each (user, reason) the user met, over (count + shrink)."""
    item_reasons = reasons[cols]  # (n, K)
    present = item_reasons >= 0
    users = np.broadcast_to(rows[:, None], item_reasons.shape)[present].astype(np.int64)
    keys = users * n_reasons + item_reasons[present]
    weights = np.broadcast_to(surprise[:, None], item_reasons.shape)[present]
    unique, inverse = np.unique(keys, return_inverse=True)
    sums = np.bincount(inverse, weights=weights, minlength=len(unique))
    counts = np.bincount(inverse, minlength=len(unique))
    return Affinity(unique, (sums / (counts + shrink)).astype(np.float32), n_reasons)
