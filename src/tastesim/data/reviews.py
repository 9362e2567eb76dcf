"""Reviews: building a dataset from review records, and review files for the subjective analysis path
(Amazon review JSONL or a generic ``item,rating,text`` CSV)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from tastesim.data.dataset import DataFormatError, Dataset, finish_interactions
from tastesim.data.records import read_csv_records, read_json_records

__all__ = ["catalog_from_reviews", "dataset_from_reviews", "load_reviews", "pick_reviews"]


# Amazon Review Data (Ni, Li, McAuley 2018) field names -> ours.
def _missing(value: object) -> bool:
    """A field a JSON record did not have (pandas fills it with NaN)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


_AMAZON = {"asin": "item", "overall": "rating", "reviewerID": "user", "unixReviewTime": "timestamp"}


def dataset_from_reviews(name: str, reviews: pd.DataFrame, items: pd.DataFrame, path: Path) -> Dataset:
    """A dataset whose ratings are reviews: one interaction per (user, item), the earliest review.

    Args:
        name: Dataset name.
        reviews: String columns ``user, item, rating, timestamp, text`` (optional ``summary``) and ``_line``,
            the line of ``path`` each record starts on; timestamps are numbers or dates.
        items: ``item, title, categories, text``; an empty ``text`` marks an item with no description of its
            own (it gets "title. Categories: ..." here, and a review-based description in a training view).
        path: The reviews file (for error messages).

    Raises:
        DataFormatError: A rating or time that is not a number (or a date), naming the line.
    """
    from tastesim.data.records import to_unix_seconds

    lines = reviews["_line"].to_numpy()
    ratings = pd.to_numeric(reviews["rating"], errors="coerce")
    if ratings.isna().any():
        row = int(ratings.isna().to_numpy().argmax())
        raise DataFormatError(path, f"rating {reviews['rating'].iloc[row]!r} is not a number", int(lines[row]))
    frame = reviews.assign(
        rating=ratings.to_numpy(dtype=np.float64),
        timestamp=to_unix_seconds(reviews["timestamp"].astype(str), path, lines, "time"),
    )
    frame = frame.sort_values("timestamp", kind="stable").drop_duplicates(["user", "item"]).sort_values("_line")
    interactions = finish_interactions(
        frame.set_index(frame["_line"].to_numpy() - 2), path, set(items["item"]), first_line=2
    )
    undescribed = frozenset(items.loc[items["text"].str.strip() == "", "item"])
    items = items.assign(
        text=[
            t.strip() or f"{title}. Categories: {', '.join(c)}."
            for t, title, c in items[["text", "title", "categories"]].itertuples(index=False)
        ]
    ).reset_index(drop=True)
    summary = frame.get("summary", "")
    texts = frame.assign(summary=summary)[["user", "item", "rating", "timestamp", "text", "summary"]]
    texts = texts[texts["text"].str.strip() != ""].reset_index(drop=True)
    return Dataset(name, interactions, items, None, texts.astype({"timestamp": "int64"}), undescribed)


def load_reviews(path: Path) -> pd.DataFrame:
    """Columns ``item`` (str), ``rating`` (float), ``text`` (str), one row per distinct review; also ``user``
    and ``timestamp`` when every row has them (CSV columns ``user``/``timestamp``, Amazon's ``reviewerID`` and
    ``unixReviewTime``), which lets a training view keep only the reviews of the training part.

    JSONL rows need ``item``/``asin``, ``rating``/``overall`` and ``text``, or Amazon's ``reviewText`` and
    ``summary`` (joined). Exact duplicates (the same review on several style variants) are dropped.

    Raises:
        DataFormatError: Naming the file and line of the first malformed row.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "reviews file not found")
    if path.suffix.lower() == ".csv":
        frame = read_csv_records(path)
        missing = {"item", "rating", "text"} - set(frame.columns)
        if missing:
            raise DataFormatError(path, f"missing column(s) {sorted(missing)}; need item,rating,text", 1)
        rows = frame[[c for c in ("item", "rating", "text", "user", "timestamp", "_line") if c in frame]].to_dict(
            "records"
        )
    else:
        rows = []
        for record in read_json_records(path).to_dict("records"):
            raw = {_AMAZON.get(k, k): v for k, v in record.items() if not _missing(v)}
            if "item" not in raw or "rating" not in raw:
                need = "need item/asin, rating/overall, text"
                raise DataFormatError(path, f"not a review ({need}): has {sorted(raw)}", int(record["_line"]))
            text = raw.get("text") or ". ".join(str(raw[k]).strip() for k in ("summary", "reviewText") if raw.get(k))
            row = {"item": str(raw["item"]), "rating": raw["rating"], "text": text, "_line": raw["_line"]}
            rows.append(row | {k: raw[k] for k in ("user", "timestamp") if k in raw})
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise DataFormatError(path, "no reviews")
    ratings = pd.to_numeric(frame["rating"], errors="coerce")
    if ratings.isna().any():
        row = int(ratings.isna().to_numpy().argmax())
        line = int(frame["_line"].iloc[row])
        raise DataFormatError(path, f"rating {frame['rating'].iloc[row]!r} is not a number", line)
    out = pd.DataFrame({"item": frame["item"].astype(str), "rating": ratings, "text": frame["text"].astype(str)})
    if {"user", "timestamp"} <= set(frame.columns) and frame[["user", "timestamp"]].notna().all(axis=None):
        out["user"] = frame["user"].astype(str)
        out["timestamp"] = pd.to_numeric(frame["timestamp"], errors="coerce")
    return out[out["text"].str.strip() != ""].drop_duplicates().reset_index(drop=True)


def pick_reviews(reviews: pd.DataFrame, per_item: int) -> dict[str, pd.DataFrame]:
    """Up to ``per_item`` reviews per item, deterministic: the lowest-rated third first (complaints are rare
    and carry the dislike reasons), then the highest-rated, longest texts first within a rating."""
    out: dict[str, pd.DataFrame] = {}
    if per_item <= 0:  # reviews switched off
        return out
    for item, group in reviews.groupby("item", sort=False):
        ranked = group.assign(_len=group["text"].str.len()).sort_values(["rating", "_len"], ascending=[True, False])
        low = max(1, per_item // 3)
        worst = ranked[ranked["rating"] <= 2].head(low)
        rest = ranked.drop(worst.index).sort_values(["rating", "_len"], ascending=[False, False])
        out[str(item)] = pd.concat([worst, rest.head(per_item - len(worst))]).drop(columns="_len")
    return out


def catalog_from_reviews(reviews: pd.DataFrame, name: str, category: str = "unknown") -> Dataset:
    """A catalog of the reviewed items (no facts: titles are ids, one category) with reviews as ratings."""
    items = sorted(reviews["item"].unique())
    frame = pd.DataFrame({"item": items, "title": items, "categories": [(category,)] * len(items), "text": ""})
    log = pd.DataFrame(
        {"user": "reviewer", "item": reviews["item"], "rating": reviews["rating"], "timestamp": range(len(reviews))}
    )
    return Dataset(name, log.astype({"timestamp": "int64"}), frame)
