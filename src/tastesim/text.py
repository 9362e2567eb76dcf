"""Keyword normalisation shared by every analyser: lower case, lemma-ish suffix folding, stop words."""

from __future__ import annotations

import re

__all__ = ["STOP_WORDS", "normalise_keyword", "tokenise"]

# English function words plus words that describe every item of a film/product catalog and so carry
# no reason ("film", "story", "follows" ...).
STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just me more
    most my myself no nor not now of off on once only or other our ours out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your
    yours one two three first second new old young named called known based set finds must become becomes
    begins takes make makes made get gets goes go way along among around however despite within without
    film films movie movies story stories tale tells follows following directed director starring stars
    star features featuring about adaptation version part sequel comedy drama genre plot character
    characters life lives man woman men women people group world time year years day days back find try
    tries trying help helps several many much whose another other others upon unknown four five six
    seven eight nine ten twenty hundred""".split()
)

_TOKEN = re.compile(r"[a-z][a-z0-9'\-]*[a-z0-9]|[a-z]")


def tokenise(text: str) -> list[str]:
    """Lower-cased word tokens (hyphenated words kept whole, possessives dropped)."""
    return [t.removesuffix("'s").strip("'-") for t in _TOKEN.findall(text.lower())]


def normalise_keyword(word: str) -> str:
    """Fold a word to a lemma-ish form: ``Heists`` -> ``heist``, ``comedies`` -> ``comedy``."""
    word = word.lower().strip(" .,;:!?\"'()[]-")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is", "ous")):
        return word[:-1]
    return word
