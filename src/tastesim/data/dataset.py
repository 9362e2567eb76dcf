"""The in-memory dataset every loader returns: interactions, items and (optionally) users."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["DataFormatError", "Dataset"]

INTERACTION_COLUMNS = ("user", "item", "rating", "timestamp")
ITEM_COLUMNS = ("item", "title", "categories", "text")
REVIEW_COLUMNS = ("user", "item", "rating", "timestamp", "text")  # plus an optional ``summary``


_LONGEST_MESSAGE = 400


class DataFormatError(ValueError):
    """A data file is malformed; the message names the file and, where known, the line."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        message = " ".join(message.split())  # one line, whatever the file held
        if len(message) > _LONGEST_MESSAGE:  # a 10 MB header or cell is quoted, not printed
            message = message[:_LONGEST_MESSAGE] + " [...]"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Dataset:
    """A catalog with its interaction log.

    Attributes:
        name: Short name used in output folders and caches.
        interactions: Columns ``user`` (str), ``item`` (str), ``rating`` (float), ``timestamp`` (int64),
            sorted by user then timestamp.
        items: Columns ``item`` (str), ``title`` (str), ``categories`` (tuple of str), ``text`` (str); the row
            order defines the integer item index used everywhere else.
        users: Optional columns ``user`` plus free attributes (age, gender, ...), used for segments.
        reviews: Optional review texts, columns ``user, item, rating, timestamp, text`` (and ``summary``),
            one per rating that has text. Item analysis reads them only through
            :func:`~tastesim.data.split.training_view`, which keeps those of the training part.
        undescribed: Items with no description of their own; a training view describes them from reviews.
        view_fraction: Set on a training view: the split it was made at.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None = None
    reviews: pd.DataFrame | None = None
    undescribed: frozenset[str] = frozenset()
    view_fraction: float | None = None
    _item_index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_item_index", {item: i for i, item in enumerate(self.items["item"])})

    @property
    def n_items(self) -> int:
        """Number of items in the catalog."""
        return len(self.items)

    def item_index(self, items: pd.Series | list[str]) -> np.ndarray:
        """Map raw item ids to row indices of :attr:`items`."""
        return np.fromiter((self._item_index[i] for i in items), dtype=np.int64, count=len(items))

    @property
    def categories(self) -> list[str]:
        """Every category in the catalog, sorted."""
        return sorted({c for cats in self.items["categories"] for c in cats})

    def restrict_users(self, users: list[str]) -> Dataset:
        """Return the dataset limited to the given users (items unchanged)."""
        keep = self.interactions["user"].isin(set(users))
        people = None if self.users is None else self.users[self.users["user"].isin(set(users))]
        reviews = None if self.reviews is None else self.reviews[self.reviews["user"].isin(set(users))]
        return replace(self, interactions=self.interactions[keep].reset_index(drop=True), users=people, reviews=reviews)


def finish_interactions(frame: pd.DataFrame, path: Path, known_items: set[str], first_line: int) -> pd.DataFrame:
    """Validate and type raw string interaction columns; errors name the file and line.

    ``frame.index`` holds each row's position in the file (header excluded, blank lines counted), so
    row label ``i`` is line ``i + first_line``.
    """
    lines = frame.index.to_numpy() + first_line
    frame = frame.reset_index(drop=True)
    out = pd.DataFrame({"user": frame["user"].astype(str), "item": frame["item"].astype(str)})
    for column, dtype in (("rating", "float64"), ("timestamp", "float64")):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if bad.size:
            row = int(bad[0])
            raise DataFormatError(path, f"{column} {frame[column].iloc[row]!r} is not a number", int(lines[row]))
        out[column] = values.astype(dtype)
    out["timestamp"] = out["timestamp"].astype("int64")
    unknown = np.flatnonzero(~out["item"].isin(known_items).to_numpy())
    if unknown.size:
        row = int(unknown[0])
        raise DataFormatError(
            path,
            f"item {out['item'].iloc[row]!r} is not in the items file ({unknown.size} such rows)",
            int(lines[row]),
        )
    if out.empty:
        raise DataFormatError(path, "no interactions")
    return out.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)
