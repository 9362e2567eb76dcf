"""Reading CSV and JSON-lines files into string tables that remember each record's line number.

Review texts hold newlines inside quoted fields, so a record's line is not its row number plus one; every
loader reads through here so that an error can name the file and the line a bad record starts on.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tastesim.data.dataset import DataFormatError

__all__ = ["csv_header", "first_json", "read_csv_records", "read_json_records", "require", "to_unix_seconds"]

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long review texts


def csv_header(path: Path) -> list[str]:
    """The header row of a CSV file (empty when unreadable)."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def first_json(path: Path) -> dict:
    """The first non-blank JSON object of a JSON-lines file (empty when it is not one)."""
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    value = json.loads(line)
                    return value if isinstance(value, dict) else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return {}


def read_csv_records(path: Path) -> pd.DataFrame:
    """Every record as strings, with a ``_line`` column (the line it starts on; the header is line 1).

    Raises:
        DataFormatError: The file is missing, not UTF-8, or a record has more fields than the header.
    """
    if not path.is_file():
        raise DataFormatError(path, "file not found")
    rows, lines = [], []
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise DataFormatError(path, "file is empty")
            start = reader.line_num + 1
            for record in reader:
                if any(cell.strip() for cell in record):
                    if len(record) > len(header):
                        raise DataFormatError(path, f"{len(record)} fields, the header has {len(header)}", start)
                    rows.append(record + [""] * (len(header) - len(record)))
                    lines.append(start)
                start = reader.line_num + 1
    except UnicodeDecodeError as err:
        raise DataFormatError(path, f"not UTF-8 text: {err}") from err
    except csv.Error as err:
        raise DataFormatError(path, f"malformed CSV: {err}", start) from err
    frame = pd.DataFrame(rows, columns=[h.strip() for h in header], dtype=str)
    frame["_line"] = np.asarray(lines, dtype=np.int64)
    return frame


def read_json_records(path: Path) -> pd.DataFrame:
    """Every JSON object of a JSON-lines file, with a ``_line`` column; values kept as Python objects.

    Raises:
        DataFormatError: A line is not a JSON object (naming it).
    """
    if not path.is_file():
        raise DataFormatError(path, "file not found")
    rows = []
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataFormatError(path, f"not UTF-8 text: {err.reason} at byte {err.start}", number) from err
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataFormatError(path, f"not JSON: {err.msg}", number) from err
            if not isinstance(value, dict):
                raise DataFormatError(path, f"expected a JSON object, got {type(value).__name__}", number)
            rows.append({**value, "_line": number})
    if not rows:
        raise DataFormatError(path, "file is empty")
    return pd.DataFrame(rows)


def require(frame: pd.DataFrame, path: Path, columns: tuple[str, ...]) -> None:
    """Raise naming ``path`` when a column is missing (JSON: naming the first record without it)."""
    for column in columns:
        if column not in frame.columns:
            raise DataFormatError(
                path, f"missing field {column!r}; have {[c for c in frame.columns if c != '_line']}", 1
            )
        missing = frame[column].isna().to_numpy()
        if missing.any():
            line = int(frame["_line"].iloc[int(missing.argmax())])
            raise DataFormatError(path, f"record without {column!r}", line)


def to_unix_seconds(values: pd.Series, path: Path, lines: np.ndarray, column: str) -> np.ndarray:
    """Numbers as they are, dates (``2011-01-26``) as unix seconds; errors name the line."""
    numeric = pd.to_numeric(values, errors="coerce")
    if not numeric.isna().any():
        return numeric.to_numpy(dtype=np.float64).astype(np.int64)
    dates = pd.to_datetime(values, errors="coerce", format="mixed")
    bad = dates.isna().to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise DataFormatError(path, f"{column} {values.iloc[row]!r} is neither a number nor a date", int(lines[row]))
    return (dates.astype("datetime64[s]").astype("int64")).to_numpy()
