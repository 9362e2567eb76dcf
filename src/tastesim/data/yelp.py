"""Loader for Yelp review data (the 2013 RecSys Challenge / Kaggle layout).

A folder with one reviews CSV (``review_id, user_id, business_id, stars, text, date``, e.g. ``yelp.csv``)
and, optionally, a business CSV (``business_id, name, categories`` and ``city``, e.g.
``yelp_training_set_business.csv``). Every review is a rating of a business (stars 1-5, date as time); the
catalog is the reviewed businesses, titled by name with their categories. A business has no description of
its own, so a training view describes it from its training reviews. The user file is not read: its
``average_stars`` is computed over every review, the held-out ones included.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tastesim.data.dataset import DataFormatError, Dataset
from tastesim.data.records import csv_header, read_csv_records, require
from tastesim.data.reviews import dataset_from_reviews

__all__ = ["find_yelp", "load_yelp"]

_REVIEW_FIELDS = ("user_id", "business_id", "stars", "text")


def find_yelp(directory: Path) -> tuple[Path, Path | None] | None:
    """``(reviews CSV, business CSV or None)`` when ``directory`` holds Yelp data, else None.

    Raises:
        DataFormatError: Several review files (the folder is ambiguous).
    """
    files = sorted(p for p in Path(directory).iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    headers = {p: set(csv_header(p)) for p in files}
    reviews = [p for p in files if set(_REVIEW_FIELDS) <= headers[p]]
    if not reviews:
        return None
    if len(reviews) > 1:
        raise DataFormatError(directory, f"several Yelp review files: {', '.join(p.name for p in reviews)}")
    business = [p for p in files if {"business_id", "name"} <= headers[p] and "user_id" not in headers[p]]
    return reviews[0], business[0] if business else None


def load_yelp(directory: Path, name: str | None = None) -> Dataset:
    """Load a Yelp review folder (see the module docstring).

    Raises:
        DataFormatError: No reviews file, or a malformed record (naming the file and line).
    """
    directory = Path(directory)
    found = find_yelp(directory)
    if found is None:
        raise DataFormatError(directory, f"no Yelp reviews CSV (with {', '.join(_REVIEW_FIELDS)})")
    review_path, business_path = found
    raw = read_csv_records(review_path)
    require(raw, review_path, (*_REVIEW_FIELDS, "date"))
    reviews = pd.DataFrame(
        {
            "user": raw["user_id"],
            "item": raw["business_id"],
            "rating": raw["stars"],
            "timestamp": raw["date"],
            "text": raw["text"].str.strip(),
            "summary": "",
            "_line": raw["_line"],
        }
    )
    reviewed = sorted(set(reviews["item"]))
    names: dict[str, tuple[str, tuple[str, ...]]] = {}
    if business_path is not None:
        business = read_csv_records(business_path)
        require(business, business_path, ("business_id", "name"))
        cats = business["categories"] if "categories" in business else pd.Series([""] * len(business))
        city = business["city"] if "city" in business else pd.Series([""] * len(business))
        for item, title, cat, town in zip(business["business_id"], business["name"], cats, city, strict=True):
            categories = tuple(c.strip() for c in cat.split(",") if c.strip())
            names[item] = (f"{title.strip()} ({town.strip()})" if town.strip() else title.strip(), categories)
    items = pd.DataFrame(
        [
            (item, names.get(item, (item, ()))[0] or item, names.get(item, (item, ()))[1] or ("unknown",), "")
            for item in reviewed
        ],
        columns=["item", "title", "categories", "text"],
    )
    return dataset_from_reviews(name or directory.resolve().name, reviews, items, review_path)
