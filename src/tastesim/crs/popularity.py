"""The popularity CRS: the floor of a comparison. It ignores what the user says and shows the most popular
items of the training data that the conversation has not shown yet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tastesim.crs.protocol import CRSReply, Message

__all__ = ["PopularityCRS"]


@dataclass
class PopularityCRS:
    """Most popular first (ties by catalog order); never repeats an item within a conversation.

    Attributes:
        item_ids: Catalog item ids.
        counts: Training interactions per item, in the order of ``item_ids``.
    """

    item_ids: list[str]
    counts: np.ndarray

    def __post_init__(self) -> None:
        self._order = [self.item_ids[i] for i in np.argsort(-np.asarray(self.counts), kind="stable")]

    def recommend(self, messages: Sequence[Message], k: int) -> CRSReply:
        """The ``k`` most popular items not shown in ``messages``."""
        shown = {i for m in messages for i in m.items}
        items = []
        for item in self._order:
            if item not in shown:
                items.append(item)
                if len(items) == k:
                    break
        return CRSReply(items=tuple(items), text="These are popular right now.")
