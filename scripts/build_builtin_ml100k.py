"""Rebuild the ML-100K item descriptions shipped as package data.

Joins the YuLan-Rec one-paragraph descriptions of MovieLens-1M movies (MIT) to the ML-100K items by
normalised title (lower case, a trailing ", The"/", A"/", An" moved to the front). Items without a
match keep no description; the loader then uses "title + genres" as their text.

Usage: python scripts/build_builtin_ml100k.py ../shared/data
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from tastesim.data.titles import normalise_title

TARGET = Path(__file__).resolve().parents[1] / "src/tastesim/data/builtin/ml-100k/ml-100k.descriptions.csv"


def main(shared_data: Path) -> None:
    """Write ``item_id,description`` for every ML-100K item whose title has a YuLan-Rec description."""
    by_title: dict[str, str] = {}
    with open(shared_data / "ml-1m-text/yulanrec_item_descriptions.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            by_title.setdefault(normalise_title(row["title"]), row["description"].strip())
    matched = 0
    with (
        open(shared_data / "ml-100k/ml-100k.item", encoding="utf-8") as src,
        open(TARGET, "w", newline="", encoding="utf-8") as out,
    ):
        writer = csv.writer(out)
        writer.writerow(["item_id", "description"])
        next(src)
        for line in src:
            item_id, title, *_ = line.rstrip("\n").split("\t")
            description = by_title.get(normalise_title(title))
            if description:
                writer.writerow([item_id, description])
                matched += 1
    print(f"{matched} items matched -> {TARGET}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
