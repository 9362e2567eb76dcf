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
must be the JSON object above. Chat mode (``crs_mode: chat``): any OpenAI-compatible chat endpoint (an LLM
used as a CRS, as in iEvaLM): the content is free text naming items, which the client maps back to
catalog items (:mod:`tastesim.crs.names`); :func:`read_chat_text` validates the envelope. The json and
openai replies are validated by :func:`read_reply` into one model, :class:`CRSReply`; the built-in server
validates request bodies with :class:`RecommendRequest` and :class:`ChatRequest` and answers chat requests
with a :class:`ChatCompletion`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr, ValidationError, field_validator

__all__ = [
    "CRS",
    "ERROR_KINDS",
    "CRSError",
    "CRSReply",
    "CRSRequest",
    "ChatCompletion",
    "ChatRequest",
    "Message",
    "Mode",
    "RecommendRequest",
    "read_chat_text",
    "read_reply",
]

ERROR_KINDS = ("timeout", "http_5xx", "http_4xx", "malformed", "refused", "transport")
ErrorKind = Literal["timeout", "http_5xx", "http_4xx", "malformed", "refused", "transport"]
Mode = Literal["json", "openai", "chat"]


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


def _item_id(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("an item id is a string or an integer")
    return str(value)


ItemId = Annotated[str, BeforeValidator(_item_id)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)  # a peer may send more than the contract says


class CRSReply(_Wire):
    """The CRS's answer: items best first (ids as strings; integers are accepted), optional text and question."""

    items: tuple[ItemId, ...]
    text: StrictStr = ""
    question: StrictStr | None = None

    @field_validator("question")
    @classmethod
    def _no_empty_question(cls, value: str | None) -> str | None:
        return value or None


class CRSError(Exception):
    """A failed turn, classified by ``kind`` (one of :data:`ERROR_KINDS`); ``status`` is the HTTP status, if any."""

    def __init__(self, kind: ErrorKind, detail: str, status: int | None = None) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.status = status


@runtime_checkable
class CRS(Protocol):
    """A conversational recommender: one reply per request; failures raise :class:`CRSError`."""

    async def respond(self, request: CRSRequest) -> CRSReply:
        """Answer one user turn."""
        ...


class _ChatMessage(_Wire):
    role: str = "assistant"
    content: StrictStr


class _Choice(_Wire):
    index: int = 0
    message: _ChatMessage
    finish_reason: str | None = "stop"


class ChatCompletion(_Wire):
    """The OpenAI chat-completions envelope; its first choice's content is a :class:`CRSReply` as JSON."""

    object: str = "chat.completion"
    model: str = ""
    choices: list[_Choice] = Field(min_length=1)

    @classmethod
    def of(cls, reply: CRSReply, model: str) -> ChatCompletion:
        """The envelope of ``reply``."""
        content = reply.model_dump_json(exclude_none=True)
        return cls(model=model, choices=[_Choice(message=_ChatMessage(content=content))])


def read_chat_text(body: bytes | str) -> str:
    """The first choice's content of a chat completion.

    Raises:
        CRSError: ``malformed`` when the body is not a chat completion with text content.
    """
    try:
        return ChatCompletion.model_validate_json(body).choices[0].message.content
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"])) or "reply"
        raise CRSError("malformed", f"{where}: {first['msg']}") from err


def read_reply(body: bytes | str, mode: Mode) -> CRSReply:
    """Validate a reply body: the JSON contract (``json``), or a chat completion carrying it (``openai``).

    Raises:
        CRSError: ``malformed`` when the body is not JSON or not the mode's shape.
    """
    try:
        if mode == "openai":
            body = ChatCompletion.model_validate_json(body).choices[0].message.content
        return CRSReply.model_validate_json(body)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"])) or "reply"
        raise CRSError("malformed", f"{where}: {first['msg'].removeprefix('Value error, ')}") from err


# -- what the built-in server reads ------------------------------------------------------------------------
class _WireMessage(_Wire):
    role: Literal["user", "assistant", "system"]
    content: str | None = ""
    items: tuple[ItemId, ...] = ()

    def message(self) -> Message | None:
        """The turn (``None`` for a system message); an assistant turn without ``items`` whose content is a
        JSON reply (OpenAI mode: the CRS's earlier reply, written back) shows that reply's items."""
        if self.role == "system":
            return None
        content, items = self.content or "", self.items
        if self.role == "assistant" and not items and content.startswith("{"):
            try:
                items = CRSReply.model_validate_json(content).items
            except ValidationError:
                items = ()
        return Message(self.role, content, items)


class _Conversation(_Wire):
    messages: list[_WireMessage]
    k: int = Field(10, ge=1, le=1000)

    @field_validator("messages")
    @classmethod
    def _user_spoke(cls, messages: list[_WireMessage]) -> list[_WireMessage]:
        if not any(m.role == "user" and (m.content or "").strip() for m in messages):
            raise ValueError("the conversation has no user text")
        return messages

    def conversation(self) -> list[Message]:
        """The user and assistant turns, in order."""
        return [m for m in (w.message() for w in self.messages) if m is not None]


class RecommendRequest(_Conversation):
    """A request body of the JSON contract (``POST /recommend``)."""

    session_id: str = ""
    turn: int = 0


class ChatRequest(_Conversation):
    """A request body of OpenAI-compatible mode (``POST /v1/chat/completions``); ``k`` is an extension."""

    model: str = "baseline"
