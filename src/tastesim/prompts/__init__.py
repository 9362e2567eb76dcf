"""Prompt templates as versioned text files, rendered by pure functions.

A file's first line is ``version: TAG``; the tag is part of every cache key, so editing a prompt (and
bumping its tag) invalidates cached answers. An optional second line ``reply: one-line`` says the reply is
a single line (generation stops at the first newline). A line ``---`` splits a chat prompt into its system part and
its user part; a file without it is a completion prompt. Fields are ``$name`` placeholders
(:class:`string.Template`), so JSON braces in a prompt need no escaping and values are never parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template

__all__ = ["Prompt", "load_prompt", "one_line", "review_slot"]


@dataclass(frozen=True)
class Prompt:
    """A loaded template.

    Attributes:
        name: File stem (``objective``, ``subjective_fewshot`` ...).
        version: The file's version tag.
        system: System message of a chat prompt; ``None`` for a completion prompt.
        template: The user message (chat) or the whole prompt (completion).
        one_line_reply: The reply is one line (header line ``reply: one-line``): generation stops at a newline.
    """

    name: str
    version: str
    system: str | None
    template: str
    one_line_reply: bool = False

    def render(self, **fields: str) -> str:
        """Fill every ``$field`` (a missing one raises ``KeyError``)."""
        return Template(self.template).substitute(fields)


@cache
def load_prompt(name: str) -> Prompt:
    """Read ``prompts/NAME.txt`` from the installed package.

    Raises:
        ValueError: When the file does not start with a ``version:`` line.
    """
    text = resources.files(__package__).joinpath(f"{name}.txt").read_text(encoding="utf-8")
    first, _, body = text.partition("\n")
    if not first.startswith("version:"):
        raise ValueError(f"prompt {name!r} must start with a 'version: TAG' line")
    one_line_reply = body.startswith("reply: one-line\n")
    if one_line_reply:
        body = body.partition("\n")[2]
    system, sep, user = body.partition("\n---\n")
    if not sep:
        system, user = None, body
    version = first.removeprefix("version:").strip()
    return Prompt(name, version, system.strip() if system else None, user, one_line_reply)


def one_line(text: str, limit: int = 600) -> str:
    """Item text as one safe line: whitespace collapsed (an injected newline cannot forge a new prompt
    line), tag brackets removed, cut at ``limit`` characters on a word boundary."""
    flat = re.sub(r"\s+", " ", text.replace("<", " ").replace(">", " ")).strip()
    if len(flat) <= limit:
        return flat
    return flat[:limit].rsplit(" ", 1)[0] + " ..."


def review_slot(rating: float) -> str:
    """The line a few-shot subjective reply starts with: ``Like:`` for a rating of 3 or more, else ``Dislike:``."""
    return "Like:" if rating >= 3 else "Dislike:"
