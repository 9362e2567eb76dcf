"""Loader for tastesim's generic format: ``interactions.csv`` + ``items.csv`` (+ optional ``users.csv``).

Format (UTF-8 CSV with a header row):

* ``interactions.csv``: ``user,item,rating,timestamp`` (rating numeric, timestamp a number such as unix time).
* ``items.csv``: ``item,title,categories,text``; ``categories`` separated by ``|``; ``text`` may be empty,
  in which case "title + categories" is used.
* ``users.csv`` (optional): ``user`` plus any attribute columns (used for segments).
* ``reviews.csv`` (optional): ``user,item,text`` (and ``summary``), one review per rating; its rating and time
  are the matching interaction's. Item analysis reads only the reviews of the training part, and an item
  with empty ``text`` is then described from them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from tastesim.data.dataset import INTERACTION_COLUMNS, ITEM_COLUMNS, DataFormatError, Dataset, finish_interactions

__all__ = ["load_generic"]


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    if not path.exists():
        raise DataFormatError(path, "file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8", skip_blank_lines=False)
    except pd.errors.ParserError as err:
        line = re.search(r"line (\d+)", str(err))
        raise DataFormatError(path, f"malformed row: {err}", int(line.group(1)) if line else None) from err
    except UnicodeDecodeError as err:
        raise DataFormatError(path, f"not UTF-8 text: {err}") from err
    except pd.errors.EmptyDataError as err:
        raise DataFormatError(path, "file is empty") from err
    frame = frame[(frame != "").any(axis=1)]  # blank lines dropped; the index keeps line positions
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataFormatError(path, f"missing column(s) {', '.join(missing)}; header is {list(frame.columns)}", 1)
    return frame


def load_generic(directory: Path, name: str | None = None) -> Dataset:
    """Load a dataset in the generic CSV format described in this module's docstring.

    Raises:
        DataFormatError: A file is missing or malformed; the message names the file and line.
    """
    directory = Path(directory)
    item_path = directory / "items.csv"
    raw_items = _read_csv(item_path, ("item", "title"))
    items = pd.DataFrame({"item": raw_items["item"].astype(str), "title": raw_items["title"].str.strip()})
    dup = items["item"].duplicated().to_numpy().nonzero()[0]
    if dup.size:
        line = int(items.index[dup[0]]) + 2
        raise DataFormatError(item_path, f"item {items['item'].iloc[dup[0]]!r} appears twice", line)
    items = items.reset_index(drop=True)
    raw_items = raw_items.reset_index(drop=True)
    cats = raw_items["categories"] if "categories" in raw_items.columns else pd.Series([""] * len(items))
    items["categories"] = [tuple(c.strip() for c in s.split("|") if c.strip()) or ("unknown",) for s in cats]
    texts = raw_items["text"] if "text" in raw_items.columns else pd.Series([""] * len(items))
    undescribed = frozenset(items["item"][texts.str.strip().eq("").to_numpy()])
    items["text"] = [
        t.strip() or f"{title}. Categories: {', '.join(c)}."
        for t, title, c in zip(texts, items["title"], items["categories"], strict=True)
    ]
    inter_path = directory / "interactions.csv"
    interactions = finish_interactions(
        _read_csv(inter_path, INTERACTION_COLUMNS), inter_path, set(items["item"]), first_line=2
    )
    user_path = directory / "users.csv"
    users = _read_csv(user_path, ("user",)) if user_path.exists() else None
    review_path = directory / "reviews.csv"
    reviews = _reviews(review_path, interactions) if review_path.exists() else None
    return Dataset(
        name or directory.resolve().name,
        interactions,
        items[list(ITEM_COLUMNS)],
        users,
        reviews,
        undescribed if reviews is not None else frozenset(),
    )


def _reviews(path: Path, interactions: pd.DataFrame) -> pd.DataFrame:
    """``reviews.csv`` joined to the ratings it reviews (rating and time from the interaction)."""
    from tastesim.data.records import read_csv_records, require

    raw = read_csv_records(path)
    require(raw, path, ("user", "item", "text"))
    rated = interactions.drop_duplicates(["user", "item"]).set_index(["user", "item"])
    keys = pd.MultiIndex.from_frame(raw[["user", "item"]])
    found = keys.isin(rated.index)
    if not found.all():
        row = int((~found).argmax())
        raise DataFormatError(
            path,
            f"review of user {raw['user'].iloc[row]!r}, item {raw['item'].iloc[row]!r}: no such rating",
            int(raw["_line"].iloc[row]),
        )
    matched = rated.loc[keys]
    out = pd.DataFrame(
        {
            "user": raw["user"].to_numpy(),
            "item": raw["item"].to_numpy(),
            "rating": matched["rating"].to_numpy(),
            "timestamp": matched["timestamp"].to_numpy(),
            "text": raw["text"].str.strip().to_numpy(),
            "summary": (raw["summary"] if "summary" in raw else pd.Series([""] * len(raw))).to_numpy(),
        }
    )
    return out[out["text"] != ""].drop_duplicates(["user", "item"]).reset_index(drop=True)
