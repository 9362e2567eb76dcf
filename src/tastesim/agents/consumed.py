"""What each agent has consumed, and what its real user went on to rate: sparse, shared per real user.

An agent's consumed items are its real user's training items (one sparse row per *distinct* user, shared by
every agent resampled from that user) plus the items it clicked during the run (a sparse agents x items
matrix that grows by one entry per click). Nothing is dense in agents x items, so the cost grows with what
agents did, not with the catalog size.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["ConsumedItems", "HeldOutItems"]


class ConsumedItems:
    """Consumed items of a block of agents (rows), each row backed by its real user's training row.

    Args:
        user_items: ``(n_users, n_items)`` sparse; nonzero = consumed before the run.
        user_rows: Each row's real user (a row of ``user_items``).
    """

    def __init__(self, user_items: sp.csr_matrix, user_rows: np.ndarray) -> None:
        self.user_items = sp.csr_matrix(user_items, dtype=np.float32)
        self.user_items.data[:] = 1.0
        self.user_rows = np.asarray(user_rows, dtype=np.int64)
        self.clicks = sp.csr_matrix((len(self.user_rows), user_items.shape[1]), dtype=np.float32)

    @property
    def n_items(self) -> int:
        """Catalog size."""
        return self.user_items.shape[1]

    def rows(self, rows: np.ndarray) -> sp.csr_matrix:
        """CSR ``(len(rows), n_items)`` float32, 1.0 for every item the rows consumed (sorted indices)."""
        both = (self.user_items[self.user_rows[rows]] + self.clicks[rows]).tocsr()
        both.sum_duplicates()
        both.data[:] = 1.0
        return both

    def dense(self, rows: np.ndarray) -> np.ndarray:
        """Bool ``(len(rows), n_items)`` of :meth:`rows`."""
        return self.rows(rows).toarray() > 0

    def add(self, rows: np.ndarray, items: np.ndarray) -> None:
        """Record that each row clicked the item beside it."""
        if len(rows):
            shape = self.clicks.shape
            new = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, items)), shape=shape)
            self.clicks = (self.clicks + new).tocsr()

    def state(self) -> dict[str, np.ndarray]:
        """The clicks, for a checkpoint."""
        coo = self.clicks.tocoo()
        return {"rows": coo.row.astype(np.int64), "items": coo.col.astype(np.int64)}

    def load(self, state: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`state`."""
        self.clicks = sp.csr_matrix(self.clicks.shape, dtype=np.float32)
        self.add(np.asarray(state["rows"]), np.asarray(state["items"]))


class HeldOutItems:
    """Whether an agent's real user rated an item after the split (the real future), by sorted keys.

    Args:
        ptr, items: Per distinct user ``u``, its held-out items ``items[ptr[u]:ptr[u + 1]]``.
        n_items: Catalog size.
    """

    def __init__(self, ptr: np.ndarray, items: np.ndarray, n_items: int) -> None:
        users = np.repeat(np.arange(len(ptr) - 1, dtype=np.int64), np.diff(ptr))
        self.n_items = n_items
        self.keys = np.unique(users * n_items + np.asarray(items, dtype=np.int64))

    def hits(self, user_rows: np.ndarray, items: np.ndarray) -> int:
        """How many (user row, item) pairs are held-out ratings."""
        if not len(items) or not len(self.keys):
            return 0
        keys = np.asarray(user_rows, dtype=np.int64) * self.n_items + np.asarray(items, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return int((self.keys[at] == keys).sum())
