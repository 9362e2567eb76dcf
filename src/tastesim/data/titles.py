"""Title normalisation used to join item texts from different sources."""

from __future__ import annotations

import re

__all__ = ["normalise_title"]

_TRAILING_ARTICLE = re.compile(r"^(?P<rest>.*),\s*(?P<article>the|a|an)$")
_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")


def normalise_title(title: str) -> str:
    """Lower-case a title, drop a trailing "(1995)" and move a trailing ", The" to the front.

    >>> normalise_title("Usual Suspects, The (1995)")
    'the usual suspects'
    """
    text = _YEAR.sub("", title.strip().lower())
    match = _TRAILING_ARTICLE.match(text)
    if match:
        text = f"{match['article']} {match['rest']}"
    return " ".join(text.split())
