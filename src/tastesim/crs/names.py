"""Item names written by an LLM, mapped back to catalog items.

An LLM CRS (or any chat endpoint: ``crs_mode: chat``) answers in free text that names movies. The names are
found (:func:`extract_names`: numbered or bulleted lists, lines, semicolon- or comma-separated lists,
quoted titles) and looked up (:class:`TitleIndex`): exactly after normalising (case, punctuation, a year in
brackets, a trailing article moved to the front or dropped: "Lion King, The" is also "The Lion King" and
"Lion King"), else by the closest title at :data:`MATCH_CUTOFF` similarity or more (``difflib``). A name
matching no title is dropped and counted.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

__all__ = ["MATCH_CUTOFF", "TitleIndex", "extract_names", "normalise_title"]

MATCH_CUTOFF = 0.88  # difflib ratio of a name and a title for a fuzzy match
_YEAR = re.compile(r"\s*[\(\[]\s*\d{4}\s*[\)\]]")
_ARTICLE = re.compile(r"^(.*),\s*(the|a|an)$")
_LEADING = re.compile(r"^\s*(?:\d+\s*[.):]|[-*\u2022]|#)\s*")
_LABEL = re.compile(r"^(movies|recommendations|titles|here are[^:]*)\s*:\s*", re.IGNORECASE)


def normalise_title(title: str) -> str:
    """Lower case, no year, ``&`` as ``and``, punctuation and extra spaces removed."""
    text = _YEAR.sub("", title.lower()).replace("&", " and ")
    text = re.sub(r"[^a-z0-9,' ]+", " ", text)
    return " ".join(text.replace("'", "").split()).strip(" ,")


def _forms(title: str) -> list[str]:
    base = normalise_title(title)
    forms = [base]
    moved = _ARTICLE.match(base)
    if moved:
        forms += [f"{moved.group(2)} {moved.group(1)}", moved.group(1)]
    elif base.startswith(("the ", "a ", "an ")):
        forms.append(base.split(" ", 1)[1])
    return [f.replace(",", "").strip() for f in forms if f]


def extract_names(text: str, limit: int = 100) -> list[str]:
    """Candidate item names in an LLM's reply, in order, without repeats."""
    pieces: list[str] = []
    for raw in text.replace("\r", "\n").split("\n"):
        line = re.sub(_LABEL, "", _LEADING.sub("", raw).strip())
        if not line:
            continue
        quoted = re.findall(r'["\u201c\u201d*]([^"\u201c\u201d*]{2,80})["\u201c\u201d*]', line)
        for part in quoted or re.split(r";|\s\|\s|,\s(?=[A-Z0-9])", line):
            name = re.split(r"\s[-\u2013\u2014:]\s|\s-\s", part)[0].strip(" .\"'*")  # "Title - why"
            if 1 <= len(name) <= 80 and any(c.isalpha() for c in name):
                pieces.append(name)
    return list(dict.fromkeys(pieces))[:limit]


class TitleIndex:
    """Look up catalog items by a name an LLM wrote.

    Args:
        item_ids: Catalog item ids.
        titles: Their titles, in the same order. When titles collide, the first item keeps the name.
    """

    def __init__(self, item_ids: Sequence[str], titles: Sequence[str]) -> None:
        self.item_ids = list(item_ids)
        self.titles = list(titles)
        self._exact: dict[str, str] = {}
        for item, title in zip(self.item_ids, self.titles, strict=True):
            for form in _forms(title):
                self._exact.setdefault(form, item)
        self._keys = list(self._exact)
        self.unmatched = 0

    def lookup(self, name: str) -> str | None:
        """The item id ``name`` refers to, or ``None``."""
        key = normalise_title(name).replace(",", "")
        if not key:
            return None
        if key in self._exact:
            return self._exact[key]
        if key.startswith(("the ", "a ", "an ")) and key.split(" ", 1)[1] in self._exact:
            return self._exact[key.split(" ", 1)[1]]
        close = difflib.get_close_matches(key, self._keys, n=1, cutoff=MATCH_CUTOFF)
        return self._exact[close[0]] if close else None

    def items(self, text: str, exclude: Sequence[str] = ()) -> tuple[tuple[str, ...], int]:
        """Item ids named in ``text``, in order, without repeats or ``exclude``; and the names matching none."""
        skip = set(exclude)
        found: list[str] = []
        missed = 0
        for name in extract_names(text):
            item = self.lookup(name)
            if item is None:
                missed += 1
            elif item not in skip and item not in found:
                found.append(item)
        self.unmatched += missed
        return tuple(found), missed
