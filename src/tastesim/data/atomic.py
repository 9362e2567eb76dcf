"""Loader for RecBole atomic files (``NAME.inter``, ``NAME.item``, ``NAME.user``)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd

from tastesim.data.dataset import DataFormatError, Dataset, finish_interactions

__all__ = ["load_atomic"]

# RecBole field names vary between datasets; the first present name wins.
_FIELDS = {
    "user": ("user_id",),
    "item": ("item_id", "business_id", "product_id"),
    "rating": ("rating", "stars", "score"),
    "timestamp": ("timestamp", "time", "date"),
    "title": ("movie_title", "title", "name", "item_name"),
    "categories": ("class", "genre", "genres", "categories", "category"),
}
_ANGLE = re.compile(r"[<>]")


def _read(path: Path, encoding: str | None) -> pd.DataFrame:
    """Read one atomic file as strings, with ``name:type`` headers reduced to ``name``.

    Blank lines are dropped but the index keeps each row's position so errors can name the line.
    With no ``encoding``, UTF-8 is tried first, then latin-1.
    """
    if not path.exists():
        raise DataFormatError(path, "file not found")
    for attempt in [encoding] if encoding else ["utf-8", "latin-1"]:
        try:
            frame = pd.read_csv(
                path,
                sep="\t",
                dtype=str,
                keep_default_na=False,
                encoding=attempt,
                quoting=csv.QUOTE_NONE,
                skip_blank_lines=False,
            )
            break
        except pd.errors.ParserError as err:
            line = re.search(r"line (\d+)", str(err))
            raise DataFormatError(path, f"malformed row: {err}", int(line.group(1)) if line else None) from err
        except pd.errors.EmptyDataError as err:
            raise DataFormatError(path, "file is empty") from err
        except UnicodeDecodeError as err:
            if encoding or attempt == "latin-1":
                raise DataFormatError(path, f"not {attempt} text: {err}") from err
    frame = frame[(frame != "").any(axis=1)]
    headers = [str(c).split(":", 1)[0] for c in frame.columns]
    if len(set(headers)) != len(headers):
        raise DataFormatError(path, f"duplicate columns in header {list(frame.columns)}", 1)
    frame.columns = headers
    return frame


def _pick(frame: pd.DataFrame, role: str, path: Path, required: bool = True) -> str | None:
    for name in _FIELDS[role]:
        if name in frame.columns:
            return name
    if required:
        raise DataFormatError(path, f"no {role} column (expected one of {', '.join(_FIELDS[role])})", 1)
    return None


def load_atomic(directory: Path, name: str | None = None, encoding: str | None = None) -> Dataset:
    """Load ``NAME.inter`` and ``NAME.item`` (and ``NAME.user``, ``NAME.descriptions.csv`` when present).

    Args:
        directory: Folder holding the atomic files.
        name: Dataset name; defaults to the folder name.
        encoding: Text encoding of the atomic files; UTF-8, else latin-1, when not given.

    Raises:
        DataFormatError: A file is missing or malformed; the message names the file and line.
    """
    directory = Path(directory)
    name = name or directory.resolve().name
    item_path = directory / f"{name}.item"
    items_raw = _read(item_path, encoding)
    item_col = _pick(items_raw, "item", item_path)
    title_col = _pick(items_raw, "title", item_path, required=False)
    cat_col = _pick(items_raw, "categories", item_path, required=False)
    items = pd.DataFrame({"item": items_raw[item_col].astype(str)})
    if items["item"].duplicated().any():
        row = int(items["item"].duplicated().to_numpy().nonzero()[0][0])
        raise DataFormatError(item_path, f"item {items['item'].iloc[row]!r} appears twice", int(items.index[row]) + 2)
    items["title"] = items_raw[title_col].str.strip() if title_col else items["item"]
    items["categories"] = (
        [tuple(c for c in s.split() if c) or ("unknown",) for s in items_raw[cat_col]]
        if cat_col
        else [("unknown",)] * len(items)
    )
    descriptions = _descriptions(directory / f"{name}.descriptions.csv")
    items["text"] = [
        descriptions.get(item) or f"{title}. Genres: {', '.join(cats)}."
        for item, title, cats in zip(items["item"], items["title"], items["categories"], strict=True)
    ]

    inter_path = directory / f"{name}.inter"
    inter_raw = _read(inter_path, encoding)
    cols = {role: _pick(inter_raw, role, inter_path) for role in ("item", "rating", "timestamp")}
    cols["user"] = _pick(inter_raw, "user", inter_path)
    inter = inter_raw.rename(columns={v: k for k, v in cols.items()})
    interactions = finish_interactions(inter, inter_path, set(items["item"]), first_line=2)

    users = None
    user_path = directory / f"{name}.user"
    if user_path.exists():
        users_raw = _read(user_path, encoding)
        users = users_raw.rename(columns={_pick(users_raw, "user", user_path): "user"})
    return Dataset(name, interactions, items, users)


def _descriptions(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    return {
        item: " ".join(_ANGLE.sub("", text).split())
        for item, text in zip(frame["item_id"], frame["description"], strict=True)
    }
