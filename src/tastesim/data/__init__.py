"""Dataset loaders (local files only; nothing is ever downloaded).

``load_dataset`` resolves a built-in name (``ml-100k``, shipped as package data) or a folder in either the
RecBole atomic format or tastesim's generic CSV format (see :mod:`tastesim.data.generic`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from tastesim.data.atomic import load_atomic
from tastesim.data.dataset import DataFormatError, Dataset
from tastesim.data.generic import load_generic

__all__ = ["BUILTIN_DATASETS", "DataFormatError", "Dataset", "load_dataset"]

BUILTIN_DATASETS = ("ml-100k",)
DataFormat = Literal["auto", "atomic", "generic"]


def builtin_path(name: str) -> Path:
    """Folder of a built-in dataset inside the installed package."""
    return Path(str(resources.files("tastesim.data") / "builtin" / name))


def load_dataset(name: str | None = None, path: Path | None = None, fmt: DataFormat = "auto") -> Dataset:
    """Load a built-in dataset by ``name`` or a dataset folder at ``path``.

    Args:
        name: A built-in name (see ``BUILTIN_DATASETS``), or the file stem of atomic files inside ``path``.
        path: Folder with atomic files (``NAME.inter``/``NAME.item``) or generic CSVs.
        fmt: ``atomic``, ``generic`` or ``auto`` (generic when ``interactions.csv`` exists).

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
    if fmt == "generic" or (fmt == "auto" and (path / "interactions.csv").exists()):
        return load_generic(path, name)
    return load_atomic(path, name)
