"""Review files for the subjective analysis path: Amazon review JSONL or a generic ``item,rating,text`` CSV."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tastesim.data.dataset import DataFormatError, Dataset

__all__ = ["catalog_from_reviews", "load_reviews", "pick_reviews"]

# Amazon Review Data (Ni, Li, McAuley 2018) field names -> ours.
_AMAZON = {"asin": "item", "overall": "rating"}


def load_reviews(path: Path) -> pd.DataFrame:
    """Columns ``item`` (str), ``rating`` (float), ``text`` (str), one row per distinct review.

    JSONL rows need ``item``/``asin``, ``rating``/``overall`` and ``text``, or Amazon's ``reviewText`` and
    ``summary`` (joined). Exact duplicates (the same review on several style variants) are dropped.

    Raises:
        DataFormatError: Naming the file and line of the first malformed row.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "reviews file not found")
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = {"item", "rating", "text"} - set(frame.columns)
        if missing:
            raise DataFormatError(path, f"missing column(s) {sorted(missing)}; need item,rating,text", 1)
        rows = frame[["item", "rating", "text"]].to_dict("records")
        first_line = 2
    else:
        rows, first_line = [], 1
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    raw = {_AMAZON.get(k, k): v for k, v in json.loads(line).items()}
                    text = raw.get("text") or ". ".join(
                        str(raw[k]).strip() for k in ("summary", "reviewText") if raw.get(k)
                    )
                    rows.append({"item": str(raw["item"]), "rating": raw["rating"], "text": text, "_line": number})
                except (json.JSONDecodeError, KeyError, AttributeError) as err:
                    raise DataFormatError(
                        path, f"not a review (need item/asin, rating/overall, text): {err}", number
                    ) from err
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise DataFormatError(path, "no reviews")
    ratings = pd.to_numeric(frame["rating"], errors="coerce")
    if ratings.isna().any():
        row = int(ratings.isna().to_numpy().argmax())
        line = int(frame["_line"].iloc[row]) if "_line" in frame else row + first_line
        raise DataFormatError(path, f"rating {frame['rating'].iloc[row]!r} is not a number", line)
    frame = pd.DataFrame({"item": frame["item"].astype(str), "rating": ratings, "text": frame["text"].astype(str)})
    return frame[frame["text"].str.strip() != ""].drop_duplicates().reset_index(drop=True)


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
