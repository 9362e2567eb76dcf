"""The CRS protocol and its JSON contract.

JSON contract (``crs_mode: json``): tastesim POSTs one request per user turn to the CRS endpoint::

    {"session_id": "s000012", "turn": 2, "k": 10,
     "messages": [
       {"role": "user", "content": "a gripping thriller with a clever plot"},
       {"role": "assistant", "content": "How about these?", "items": ["50", "172"]},
       {"role": "user", "content": "Not that, too slow. something tense, clever plot"}]}

and expects ``200`` with ``{"items": ["98", "12"], "text": "optional reply", "question": "optional"}``:
``items`` are catalog item ids, best first (strings; numbers are accepted). The CRS is stateless from
tastesim's point of view: every request carries the whole conversation, the items shown so far included.

OpenAI-compatible mode (``crs_mode: openai``): the same messages (items of assistant turns written back as
the JSON content the CRS sent) go to ``/v1/chat/completions``; the reply's ``choices[0].message.content``
must be the JSON object above.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "CRS",
    "ERROR_KINDS",
    "CRSError",
    "CRSReply",
    "CRSRequest",
    "Message",
    "parse_openai_reply",
    "parse_reply",
]

ERROR_KINDS = ("timeout", "http_5xx", "http_4xx", "malformed", "refused", "transport")
ErrorKind = Literal["timeout", "http_5xx", "http_4xx", "malformed", "refused", "transport"]


@dataclass(frozen=True)
class Message:
    """One turn of the conversation; ``items`` are the item ids an assistant turn showed."""

    role: Literal["user", "assistant"]
    content: str
    items: tuple[str, ...] = ()

    def to_json(self) -> dict:
        """The message in the JSON contract."""
        out: dict = {"role": self.role, "content": self.content}
        if self.role == "assistant":
            out["items"] = list(self.items)
        return out


@dataclass(frozen=True)
class CRSRequest:
    """What the CRS is asked in one turn."""

    session_id: str
    turn: int
    messages: tuple[Message, ...]
    k: int = 10

    def to_json(self) -> dict:
        """The request body of the JSON contract."""
        return {
            "session_id": self.session_id,
            "turn": self.turn,
            "k": self.k,
            "messages": [m.to_json() for m in self.messages],
        }


@dataclass(frozen=True)
class CRSReply:
    """The CRS's answer: items best first, optional text and question."""

    items: tuple[str, ...]
    text: str = ""
    question: str | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def to_json(self) -> dict:
        """The reply body of the JSON contract."""
        out: dict = {"items": list(self.items), "text": self.text}
        if self.question:
            out["question"] = self.question
        return out


class CRSError(Exception):
    """A failed turn, classified by ``kind`` (one of :data:`ERROR_KINDS`)."""

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@runtime_checkable
class CRS(Protocol):
    """A conversational recommender: one reply per request; failures raise :class:`CRSError`."""

    async def respond(self, request: CRSRequest) -> CRSReply:
        """Answer one user turn."""
        ...


def parse_reply(data: object) -> CRSReply:
    """Validate a decoded JSON reply of the contract.

    Raises:
        CRSError: ``malformed`` when the shape is wrong.
    """
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise CRSError("malformed", "reply is not an object with an 'items' list")
    items = data["items"]
    if not all(isinstance(i, str | int) and not isinstance(i, bool) for i in items):
        raise CRSError("malformed", "'items' must hold item ids (strings or integers)")
    text, question = data.get("text", ""), data.get("question")
    if not isinstance(text, str) or not (question is None or isinstance(question, str)):
        raise CRSError("malformed", "'text' and 'question' must be strings")
    return CRSReply(tuple(str(i) for i in items), text, question or None)


def parse_openai_reply(data: object) -> CRSReply:
    """Validate an OpenAI chat-completions reply whose message content is the JSON contract's reply."""
    try:
        content = data["choices"][0]["message"]["content"]  # type: ignore[index]
        return parse_reply(json.loads(content))
    except (KeyError, IndexError, TypeError, json.JSONDecodeError) as err:
        raise CRSError("malformed", f"not a chat completion with a JSON reply: {err}") from err
