"""Loader for Amazon review data: a folder with one reviews file and, optionally, product metadata.

Two layouts of the same data are read:

* **Amazon 2014 (5-core) as CSV** (McAuley et al.; the Kaggle re-publication): ``reviewerID, asin,
  reviewerName, helpful, reviewText, overall, summary, unixReviewTime, reviewTime``; metadata as a CSV with
  ``product_id`` (or ``asin``), ``title`` and any of ``brand, description, features, category``.
* **Amazon 2018 as JSON lines** (Ni, Li and McAuley): one review object per line with ``reviewerID, asin,
  overall, unixReviewTime, reviewText, summary``; metadata as ``meta*.json(l)`` objects with ``asin, title``
  and any of ``brand, description, feature, category`` (lists or strings).

Every review is a rating; the catalog is the reviewed items. A product without metadata (or without a
description in it) has no text of its own: it is described from its training reviews
(:func:`~tastesim.data.split.training_view`). The same reviewer reviewing one product twice (2018 data
repeats a review on each style variant) counts once, the earliest.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tastesim.data.dataset import DataFormatError, Dataset
from tastesim.data.records import csv_header, first_json, read_csv_records, read_json_records, require
from tastesim.data.reviews import dataset_from_reviews

__all__ = ["find_amazon", "load_amazon"]

_REVIEW_FIELDS = ("reviewerID", "asin", "overall")
_JSON_SUFFIXES = (".jsonl", ".json")


def _is_review_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv" and set(_REVIEW_FIELDS) <= set(csv_header(path))


def _is_review_json(path: Path) -> bool:
    return path.suffix.lower() in _JSON_SUFFIXES and set(_REVIEW_FIELDS) <= set(first_json(path))


def _is_meta(path: Path) -> bool:
    if path.suffix.lower() == ".csv":
        header = set(csv_header(path))
        return "title" in header and bool({"product_id", "asin"} & header) and "reviewerID" not in header
    if path.suffix.lower() in _JSON_SUFFIXES:
        first = first_json(path)
        return "asin" in first and "title" in first and "reviewerID" not in first
    return False


def find_amazon(directory: Path) -> tuple[Path, Path | None] | None:
    """``(reviews file, metadata file or None)`` when ``directory`` holds Amazon review data, else None.

    Raises:
        DataFormatError: Several review files (the folder is ambiguous).
    """
    files = sorted(p for p in Path(directory).iterdir() if p.is_file())
    reviews = [p for p in files if _is_review_csv(p) or _is_review_json(p)]
    if not reviews:
        return None
    if len(reviews) > 1:
        raise DataFormatError(directory, f"several Amazon review files: {', '.join(p.name for p in reviews)}")
    meta = [p for p in files if _is_meta(p)]
    return reviews[0], meta[0] if meta else None


def _joined(value: object) -> str:
    if isinstance(value, list):
        return " ".join(str(v).strip() for v in value if str(v).strip())
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value).strip()


def _metadata(path: Path) -> pd.DataFrame:
    """Columns ``item, title, categories, text`` (text empty when the product has no description)."""
    frame = read_csv_records(path) if path.suffix.lower() == ".csv" else read_json_records(path)
    frame = frame.rename(columns={"product_id": "asin", "features": "feature"})
    require(frame, path, ("asin", "title"))
    frame = frame.drop_duplicates("asin")
    cats = frame["category"] if "category" in frame else pd.Series([""] * len(frame), index=frame.index)
    parts = {
        name: frame[name].map(_joined) if name in frame else pd.Series([""] * len(frame), index=frame.index)
        for name in ("description", "feature", "brand")
    }
    text = [
        " ".join(x for x in (d, f"Features: {f}." if f else "", f"Brand: {b}." if b else "") if x) if d or f else ""
        for d, f, b in zip(parts["description"], parts["feature"], parts["brand"], strict=True)
    ]
    categories = [
        tuple(c.strip() for c in (v if isinstance(v, list) else str(v).split("|")) if str(c).strip()) for v in cats
    ]
    return pd.DataFrame(
        {
            "item": frame["asin"].astype(str),
            "title": frame["title"].map(_joined),
            "categories": categories,
            "text": text,
        }
    )


def load_amazon(directory: Path, name: str | None = None) -> Dataset:
    """Load an Amazon review folder (see the module docstring).

    Raises:
        DataFormatError: No reviews file, or a malformed record (naming the file and line).
    """
    directory = Path(directory)
    found = find_amazon(directory)
    if found is None:
        raise DataFormatError(
            directory, f"no Amazon reviews file (a CSV or JSON lines with {', '.join(_REVIEW_FIELDS)})"
        )
    review_path, meta_path = found
    raw = read_csv_records(review_path) if review_path.suffix.lower() == ".csv" else read_json_records(review_path)
    require(raw, review_path, ("reviewerID", "asin", "overall", "unixReviewTime"))
    reviews = pd.DataFrame(
        {
            "user": raw["reviewerID"].astype(str),
            "item": raw["asin"].astype(str),
            "rating": raw["overall"],
            "timestamp": raw["unixReviewTime"],
            "text": raw["reviewText"].map(_joined) if "reviewText" in raw else "",
            "summary": raw["summary"].map(_joined) if "summary" in raw else "",
            "_line": raw["_line"],
        }
    )
    meta = (
        _metadata(meta_path) if meta_path is not None else pd.DataFrame(columns=["item", "title", "categories", "text"])
    )
    reviewed = list(dict.fromkeys(reviews["item"]))
    meta = meta[meta["item"].isin(set(reviewed))].set_index("item")
    default = _default_category(meta)
    rows = []
    for item in sorted(reviewed):
        if item in meta.index:
            row = meta.loc[item]
            rows.append((item, row["title"] or item, row["categories"] or (default,), row["text"]))
        else:
            rows.append((item, item, (default,), ""))
    items = pd.DataFrame(rows, columns=["item", "title", "categories", "text"])
    return dataset_from_reviews(name or directory.resolve().name, reviews, items, review_path)


def _default_category(meta: pd.DataFrame) -> str:
    """The most common metadata category (5-core files are one category each), else ``unknown``."""
    counts = pd.Series([c[0] for c in meta["categories"] if c]).value_counts() if len(meta) else pd.Series([])
    return str(counts.index[0]) if len(counts) else "unknown"
