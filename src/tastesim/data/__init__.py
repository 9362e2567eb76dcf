"""Dataset loaders (local files only; nothing is ever downloaded).

``load_dataset`` resolves a built-in name (``ml-100k``, shipped as package data) or a folder in one of the
formats below; ``auto`` recognises the format from the folder's files (:func:`detect_format`).

| format | files |
|---|---|
| ``generic`` | ``interactions.csv``, ``items.csv`` (+ ``users.csv``, ``reviews.csv``): :mod:`tastesim.data.generic` |
| ``atomic`` | RecBole ``NAME.inter``, ``NAME.item`` (+ ``NAME.user``): :mod:`tastesim.data.atomic` |
| ``amazon`` | an Amazon reviews CSV (2014) or JSON lines (2018) (+ product metadata): :mod:`tastesim.data.amazon` |
| ``yelp`` | a Yelp reviews CSV (+ business CSV): :mod:`tastesim.data.yelp` |
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from tastesim.data.amazon import find_amazon, load_amazon
from tastesim.data.atomic import load_atomic
from tastesim.data.dataset import DataFormatError, Dataset
from tastesim.data.generic import load_generic
from tastesim.data.split import split_by_time, training_view
from tastesim.data.yelp import find_yelp, load_yelp

__all__ = [
    "BUILTIN_DATASETS",
    "DATA_FORMATS",
    "DataFormatError",
    "Dataset",
    "detect_format",
    "load_dataset",
    "split_by_time",
    "training_view",
]

BUILTIN_DATASETS = ("ml-100k",)
DataFormat = Literal["auto", "atomic", "generic", "amazon", "yelp"]
DATA_FORMATS: tuple[str, ...] = ("auto", "atomic", "generic", "amazon", "yelp")


def builtin_path(name: str) -> Path:
    """Folder of a built-in dataset inside the installed package."""
    return Path(str(resources.files("tastesim.data") / "builtin" / name))


def detect_format(path: Path) -> str:
    """The format of a dataset folder, from its files.

    Raises:
        DataFormatError: No known format matches (the message lists what each format needs).
    """
    path = Path(path)
    if (path / "interactions.csv").exists():
        return "generic"
    if any(path.glob("*.inter")) or any(path.glob("*.item")):
        return "atomic"
    if find_amazon(path) is not None:
        return "amazon"
    if find_yelp(path) is not None:
        return "yelp"
    raise DataFormatError(
        path,
        "no dataset format recognised: expected interactions.csv + items.csv (generic), NAME.inter + NAME.item "
        "(atomic), an Amazon reviews file (CSV or JSON lines with reviewerID, asin, overall) or a Yelp reviews "
        "CSV (user_id, business_id, stars, text)",
    )


def load_dataset(name: str | None = None, path: Path | None = None, fmt: DataFormat = "auto") -> Dataset:
    """Load a built-in dataset by ``name`` or a dataset folder at ``path``.

    Args:
        name: A built-in name (see ``BUILTIN_DATASETS``), or the file stem of atomic files inside ``path``
            (for other formats, the dataset's name; the folder name when empty).
        path: A dataset folder (see the module docstring for the formats).
        fmt: One of ``DATA_FORMATS``; ``auto`` detects it (:func:`detect_format`).

    Raises:
        DataFormatError: Files missing or malformed.
        ValueError: Neither a known name nor a path was given.
    """
    if path is None:
        if name not in BUILTIN_DATASETS:
            raise ValueError(f"unknown built-in dataset {name!r}; built-ins: {', '.join(BUILTIN_DATASETS)}")
        return load_atomic(builtin_path(name), name)
    path = Path(path)
    if not path.is_dir():
        raise DataFormatError(path, "dataset folder not found")
    if fmt == "auto":
        fmt = detect_format(path)  # type: ignore[assignment]
    if fmt == "generic":
        return load_generic(path, name)
    if fmt == "amazon":
        return load_amazon(path, name)
    if fmt == "yelp":
        return load_yelp(path, name)
    if fmt != "atomic":
        raise ValueError(f"unknown data format {fmt!r}; choose one of {', '.join(DATA_FORMATS)}")
    if name is None:
        stems = sorted({p.stem for p in (*path.glob("*.inter"), *path.glob("*.item"))})
        name = stems[0] if len(stems) == 1 else None
    return load_atomic(path, name)
