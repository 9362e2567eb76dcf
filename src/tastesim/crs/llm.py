"""The LLM CRS: a language model reads the dialogue and names movies; the names are mapped to catalog items.

The embedded model (SmolLM2-135M by default) is asked with a few-shot completion prompt
(``prompts/crs_llm.txt``: a user's request, then ``Movies: Title (year); ...``), which tiny models follow
better than chat instructions. Its reply's names are looked up in the catalog (:class:`~tastesim.crs.names.TitleIndex`);
names of items already shown, or of no catalog item, are dropped. The model knows only what it read in
training, so it names famous titles, and a reply may hold fewer than ``k`` items. Served by
``tastesim serve-crs --llm`` (JSON contract and OpenAI-compatible chat, like the retrieval CRS).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from tastesim.crs.names import TitleIndex
from tastesim.crs.protocol import CRSReply, Message
from tastesim.llm.backend import LLMBackend
from tastesim.prompts import load_prompt, one_line

__all__ = ["LLMCRS"]

_TURNS = 3  # the latest user turns the prompt carries


class LLMCRS:
    """Names items with ``backend`` and maps them with ``index``; safe to call from several threads.

    Attributes:
        item_ids: Catalog item ids (the index's).
        names_unmatched: Names in replies that matched no catalog item.
        replies: Replies generated.
    """

    def __init__(self, backend: LLMBackend, index: TitleIndex, *, max_tokens: int = 100, seed: int = 0) -> None:
        self.backend = backend
        self.index = index
        self.item_ids = index.item_ids
        self.max_tokens = max_tokens
        self.seed = seed
        self.replies = 0
        self.names_unmatched = 0
        self._lock = threading.Lock()

    @staticmethod
    def prompt(messages: Sequence[Message]) -> str:
        """The few-shot prompt for the dialogue: its latest user turns, oldest first, as one line."""
        said = [one_line(m.content, 300) for m in messages if m.role == "user" and m.content.strip()]
        return load_prompt("crs_llm").render(dialogue=" / ".join(said[-_TURNS:])).rstrip()

    def recommend(self, messages: Sequence[Message], k: int) -> CRSReply:
        """Items the model names for ``messages``, less those already shown, at most ``k``.

        Raises:
            ValueError: When no user turn has text.
            LLMError: When the model fails.
        """
        if not any(m.role == "user" and m.content.strip() for m in messages):
            raise ValueError("the conversation has no user text")
        shown = [i for m in messages for i in m.items]
        reply = self.backend.complete(
            self.prompt(messages), max_tokens=self.max_tokens, temperature=0.0, seed=self.seed, stop=["\n"]
        )
        items, missed = self.index.items(reply.text, exclude=shown)
        with self._lock:
            self.replies += 1
            self.names_unmatched += missed
        return CRSReply(items=items[:k], text=reply.text.strip()[:500])
