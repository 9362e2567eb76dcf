"""The production backend: LangChain's ``ChatOllama`` against a real Ollama (or ``tastesim llm serve``)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from tastesim.llm.backend import LLMError, LLMReply

__all__ = ["DEFAULT_OLLAMA_MODEL", "OllamaBackend", "default_base_url"]

DEFAULT_OLLAMA_MODEL = "llama3.1:8b"


def default_base_url() -> str:
    """``$OLLAMA_HOST`` (with ``http://`` added when missing) or Ollama's default local address."""
    host = os.environ.get("OLLAMA_HOST", "").strip() or "http://127.0.0.1:11434"
    return host if "://" in host else f"http://{host}"


class OllamaBackend:
    """Chat completions through ``ChatOllama`` with a timeout, bounded retries with backoff, and a cap on
    concurrent requests. Nothing connects until the first call.

    Args:
        model: Ollama model name (``ollama pull`` it first).
        base_url: Server address; default :func:`default_base_url`.
        timeout: Seconds per HTTP request.
        retries: Extra attempts after a timeout, a refused connection or an HTTP 5xx.
        backoff: Seconds before the first retry; doubles each time.
        concurrency: Requests in flight at once from this backend.
    """

    name = "ollama"

    def __init__(
        self,
        model: str = DEFAULT_OLLAMA_MODEL,
        *,
        base_url: str | None = None,
        timeout: float = 120.0,
        retries: int = 2,
        backoff: float = 1.0,
        concurrency: int = 2,
    ) -> None:
        self.model = model
        self.base_url = base_url or default_base_url()
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._slots = threading.BoundedSemaphore(concurrency)
        self._chat: Any = None

    def _client(self) -> Any:
        if self._chat is None:
            from langchain_ollama import ChatOllama

            self._chat = ChatOllama(model=self.model, base_url=self.base_url, client_kwargs={"timeout": self.timeout})
        return self._chat

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
        """One chat turn; ``json_mode`` asks Ollama for JSON output (``format="json"``)."""
        messages = ([("system", system)] if system else []) + [("human", prompt)]
        options: dict[str, Any] = {"num_predict": max_tokens, "temperature": temperature, "seed": seed}
        if stop:
            options["stop"] = stop
        extra = {"format": "json"} if json_mode else {}
        delay = self.backoff
        for attempt in range(self.retries + 1):
            start = time.perf_counter()
            try:
                with self._slots:
                    message = self._client().invoke(messages, options=options, **extra)
            except Exception as err:
                retry, explanation = self._explain(err)
                if not retry or attempt == self.retries:
                    raise LLMError(explanation) from err
                time.sleep(delay)
                delay *= 2
                continue
            usage = message.usage_metadata or {}
            text = message.content if isinstance(message.content, str) else str(message.content)
            return LLMReply(
                text, usage.get("input_tokens", 0), usage.get("output_tokens", 0), time.perf_counter() - start
            )
        raise AssertionError("unreachable")  # the loop returns or raises

    def _explain(self, err: Exception) -> tuple[bool, str]:
        """Whether ``err`` is worth a retry, and a message that says what to do about it."""
        import httpx
        from ollama import ResponseError

        where = f"Ollama at {self.base_url}"
        if isinstance(err, httpx.TimeoutException):
            return True, f"{where} did not answer within {self.timeout:g} s (raise the timeout or use a smaller model)"
        if isinstance(err, httpx.TransportError | ConnectionError):
            return (
                True,
                f"cannot reach {where} ({err}); check that Ollama is running (`ollama serve`) or set OLLAMA_HOST",
            )
        if isinstance(err, ResponseError):
            if err.status_code == 404:
                return False, f"{where} has no model {self.model!r}: run `ollama pull {self.model}`"
            return err.status_code >= 500, f"{where} answered HTTP {err.status_code}: {err.error}"
        return False, f"{where} failed: {type(err).__name__}: {err}"
