"""ItemProfile: what every item analyser (keyphrase or LLM) produces for one item."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tastesim.paths import atomic_write_text

__all__ = ["ItemProfile", "Reason", "read_profiles", "write_profiles"]


@dataclass(frozen=True)
class Reason:
    """A short reason to like or dislike an item, with 1-3 normalised keywords."""

    text: str
    keywords: tuple[str, ...]
    evidence: str = ""


@dataclass(frozen=True)
class ItemProfile:
    """An item's analysis: its categories and its possible like and dislike reasons.

    Attributes:
        item: Raw item id.
        categories: The item's categories; the first one is the primary category stored with memories.
        like: Reasons a user may like it.
        dislike: Reasons a user may dislike it.
        source: Which analyser produced it (``keyphrase``, ``llm:<model>``, ``fallback``).
    """

    item: str
    categories: tuple[str, ...]
    like: tuple[Reason, ...]
    dislike: tuple[Reason, ...]
    source: str

    @property
    def category(self) -> str:
        """Primary category."""
        return self.categories[0]

    def to_json(self) -> str:
        """One JSON line."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @staticmethod
    def from_dict(data: dict) -> ItemProfile:
        """Inverse of :meth:`to_json` (after ``json.loads``)."""

        def reasons(rows: Iterable[dict]) -> tuple[Reason, ...]:
            return tuple(Reason(r["text"], tuple(r["keywords"]), r.get("evidence", "")) for r in rows)

        return ItemProfile(
            str(data["item"]),
            tuple(data["categories"]),
            reasons(data["like"]),
            reasons(data["dislike"]),
            data.get("source", "unknown"),
        )


def write_profiles(profiles: Sequence[ItemProfile], path: Path) -> None:
    """Write profiles as JSON lines, atomically (a crash never leaves a half-written file)."""
    atomic_write_text(Path(path), "".join(p.to_json() + "\n" for p in profiles))


def read_profiles(path: Path) -> list[ItemProfile]:
    """Read profiles written by :func:`write_profiles`."""
    from tastesim.data.dataset import DataFormatError

    out = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                out.append(ItemProfile.from_dict(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise DataFormatError(path, f"not an item profile: {err}", number) from err
    return out
