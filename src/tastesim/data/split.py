"""The time split every part of tastesim uses, and the training view of a dataset.

Each user's earlier ``train_fraction`` of ratings (at least one) is the *training part*; the rest is held
out. Anything that describes an item (its review-based description, the reviews its subjective reasons come
from) may read only the training part, so :func:`training_view` is the dataset item analysis sees.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd

from tastesim.data.dataset import Dataset

__all__ = ["describe_from_reviews", "split_by_time", "training_reviews", "training_view"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s*(?=[A-Z])")
_DESCRIPTION_CHARS = 600  # a review-based description is about one paragraph


def split_by_time(interactions: pd.DataFrame, train_fraction: float) -> pd.Series:
    """Bool mask of training rows: each user's earliest ``train_fraction`` of ratings (at least one).

    ``interactions`` is sorted by user, then time (as every loader returns it).
    """
    rank = interactions.groupby("user", sort=False).cumcount()
    size = interactions.groupby("user", sort=False)["item"].transform("size")
    n_train = np.maximum(1, np.floor(size * train_fraction)).astype(int)
    return rank < n_train


def training_reviews(reviews: pd.DataFrame, interactions: pd.DataFrame, train_fraction: float) -> pd.DataFrame:
    """The reviews whose (user, item) rating lies in the training part of ``interactions``.

    A review with no user (or whose user and item match no rating) cannot be placed in time and is dropped:
    it might be a held-out one.
    """
    if "user" not in reviews.columns:
        return reviews.iloc[0:0]
    train = interactions[split_by_time(interactions, train_fraction).to_numpy()]
    pairs = pd.MultiIndex.from_frame(train[["user", "item"]].astype(str))
    keep = pd.MultiIndex.from_frame(reviews[["user", "item"]].astype(str)).isin(pairs)
    return reviews[keep].reset_index(drop=True)


def describe_from_reviews(title: str, categories: tuple[str, ...], reviews: pd.DataFrame) -> str:
    """A one-paragraph description of an item from its reviews (oldest first): the reviewers' headlines
    and first sentences, after the title and categories, cut at about 600 characters."""
    head = f"{title}. Categories: {', '.join(categories)}."
    if reviews.empty:
        return head
    ordered = reviews.sort_values("timestamp", kind="stable") if "timestamp" in reviews else reviews
    summaries = ordered["summary"] if "summary" in ordered else pd.Series([""] * len(ordered))
    parts = []
    for summary, text in zip(summaries, ordered["text"], strict=True):
        first = _first_sentence(str(text))
        headline = " ".join(str(summary).split()).rstrip(".!?")
        sentence = first if first.endswith("...") else f"{first}."
        parts.append(f"{headline}: {sentence}" if headline else sentence)
    body = " ".join(" ".join(parts).split())
    if len(body) > _DESCRIPTION_CHARS:
        body = body[:_DESCRIPTION_CHARS].rsplit(" ", 1)[0] + " ..."
    return f"{head} Reviewers say: {body}"


def _first_sentence(text: str) -> str:
    """The first sentence of a review (a period followed by a capital also ends one), at most 160 characters."""
    flat = " ".join(text.split())
    first = _SENTENCE_END.split(flat, maxsplit=1)[0].strip().rstrip(".!?")
    return first if len(first) <= 160 else first[:160].rsplit(" ", 1)[0] + " ..."


def training_view(dataset: Dataset, train_fraction: float) -> Dataset:
    """The dataset as item analysis may see it at this split: reviews of the training part only, and items
    without a description described from those reviews. Interactions are unchanged (evaluation needs the
    held-out ratings); a dataset without reviews comes back as it is, marked with the split."""
    if dataset.reviews is None:
        return replace(dataset, view_fraction=train_fraction)
    if dataset.view_fraction is not None:
        if dataset.view_fraction != train_fraction:
            raise ValueError(f"dataset is a training view at {dataset.view_fraction}, not at {train_fraction}")
        return dataset
    reviews = training_reviews(dataset.reviews, dataset.interactions, train_fraction)
    items = dataset.items
    if dataset.undescribed:
        by_item = dict(iter(reviews.groupby("item", sort=False)))
        empty = reviews.iloc[0:0]
        texts = [
            describe_from_reviews(title, cats, by_item.get(item, empty)) if item in dataset.undescribed else text
            for item, title, cats, text in items[["item", "title", "categories", "text"]].itertuples(index=False)
        ]
        items = items.assign(text=texts)
    return replace(dataset, items=items, reviews=reviews, view_fraction=train_fraction)
