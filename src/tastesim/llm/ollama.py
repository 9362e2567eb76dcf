"""The production backend: LangChain's ``ChatOllama`` against a real Ollama (or ``tastesim llm serve``)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from tastesim.llm.backend import LLMError, LLMReply
from tastesim.scenario import OllamaSettings

__all__ = ["DEFAULT_OLLAMA_MODEL", "OllamaBackend", "default_base_url"]

DEFAULT_OLLAMA_MODEL = "llama3.1:8b"


def default_base_url() -> str:
    """``$OLLAMA_HOST`` (with ``http://`` added when missing) or Ollama's default local address."""
    host = os.environ.get("OLLAMA_HOST", "").strip() or "http://127.0.0.1:11434"
    return host if "://" in host else f"http://{host}"


class OllamaBackend:
    """Chat completions through ``ChatOllama`` with a timeout, bounded retries with backoff, and a cap on
    concurrent requests. Nothing connects until the first call.

    A timeout, a refused connection or an HTTP 5xx is retried (``settings.retries`` more attempts, waiting
    ``settings.backoff`` seconds, then twice that, and so on); any other failure is reported at once.

    Args:
        settings: Model, server address (default :func:`default_base_url`), timeout, retries, backoff and
            requests in flight; see :class:`~tastesim.scenario.OllamaSettings`.
    """

    name = "ollama"

    def __init__(self, settings: OllamaSettings | None = None) -> None:
        self.settings = settings or OllamaSettings()
        self.model = self.settings.model or DEFAULT_OLLAMA_MODEL
        self.base_url = self.settings.base_url or default_base_url()
        self._slots = threading.BoundedSemaphore(self.settings.concurrency)
        self._chat: Any = None

    def _client(self) -> Any:
        if self._chat is None:
            from langchain_ollama import ChatOllama

            self._chat = ChatOllama(
                model=self.model, base_url=self.base_url, client_kwargs={"timeout": self.settings.timeout}
            )
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
        retrying = Retrying(  # one per call: a Retrying object keeps the state of the call it runs
            retry=retry_if_exception(lambda err: self._explain(err)[0]),
            stop=stop_after_attempt(self.settings.retries + 1),
            wait=wait_exponential(multiplier=self.settings.backoff),
            reraise=True,
        )
        try:
            return retrying(self._invoke, messages, options, extra)
        except Exception as err:  # whatever ChatOllama raised, the user gets what to do about it
            raise LLMError(self._explain(err)[1]) from err

    def _invoke(self, messages: list[tuple[str, str]], options: dict[str, Any], extra: dict[str, str]) -> LLMReply:
        start = time.perf_counter()
        with self._slots:
            message = self._client().invoke(messages, options=options, **extra)
        usage = message.usage_metadata or {}
        text = message.content if isinstance(message.content, str) else str(message.content)
        return LLMReply(text, usage.get("input_tokens", 0), usage.get("output_tokens", 0), time.perf_counter() - start)

    def _explain(self, err: Exception) -> tuple[bool, str]:
        """Whether ``err`` is worth a retry, and a message that says what to do about it."""
        import httpx
        from ollama import ResponseError

        where = f"Ollama at {self.base_url}"
        if isinstance(err, httpx.TimeoutException):
            timeout = self.settings.timeout
            return True, f"{where} did not answer within {timeout:g} s (raise the timeout or use a smaller model)"
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
