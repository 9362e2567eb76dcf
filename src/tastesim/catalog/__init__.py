"""The catalog as every layer above sees it: item profiles, the index tables built from them, and the
decision types returned for shown items."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tastesim.catalog.decisions import Decisions, PairFeatures
from tastesim.catalog.profile import ItemProfile, Reason, read_profiles, write_profiles
from tastesim.catalog.tables import CatalogTables, ReasonBank

__all__ = [
    "Catalog",
    "CatalogTables",
    "Decisions",
    "ItemProfile",
    "PairFeatures",
    "Reason",
    "ReasonBank",
    "read_profiles",
    "write_profiles",
]


@dataclass(frozen=True)
class Catalog:
    """The items as the simulation sees them: ids in row order, index tables, reason bank and the
    self-information ``-log2(share of training users who consumed the item)`` of each item."""

    item_ids: list[str]
    tables: CatalogTables
    bank: ReasonBank
    self_information: np.ndarray
