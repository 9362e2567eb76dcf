"""The one interface every LLM backend implements, and the factory that builds one from its settings.

Two real backends: ``ollama`` (LangChain's ``ChatOllama``; a real Ollama or ``tastesim llm serve``) and
``llamacpp`` (an in-process GGUF model through ``xllamacpp``, no server). Each takes its frozen settings
model (:class:`~tastesim.scenario.OllamaSettings`, :class:`~tastesim.scenario.LlamaCppSettings`; unknown
options are errors). Both return plain :class:`LLMReply` objects, never a provider's response type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tastesim.scenario import LLMSettings, OllamaSettings

__all__ = ["LLMBackend", "LLMError", "LLMReply", "make_backend"]


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


def make_backend(settings: LLMSettings) -> LLMBackend:
    """The backend those settings are for; nothing connects or loads until the first call.

    Build the settings by name with :func:`tastesim.scenario.backend_settings` (``"ollama"`` or ``"llamacpp"``).
    """
    if isinstance(settings, OllamaSettings):
        from tastesim.llm.ollama import OllamaBackend

        return OllamaBackend(settings)
    from tastesim.llm.llamacpp import LlamaCppBackend

    return LlamaCppBackend(settings)
