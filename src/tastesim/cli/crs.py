"""``tastesim serve-crs``: serve a built-in CRS over HTTP (retrieval baseline, popularity floor, LLM CRS)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["serve_crs"]


def serve_crs(  # noqa: PLR0917 (typer maps each command-line option to a parameter)
    scenario: Annotated[
        Path | None, typer.Argument(help="scenario whose dataset and embedder to use (default: built-in ML-100K)")
    ] = None,
    port: Annotated[int, typer.Option("--port", "-p", help="port to listen on (0 = a free one)")] = 8765,
    host: Annotated[str, typer.Option("--host", help="address to bind; keep the loopback default")] = "127.0.0.1",
    kind: Annotated[str, typer.Option("--kind", "-k", help="retrieval | popularity | llm")] = "retrieval",
    llm: Annotated[bool, typer.Option("--llm", help="serve the LLM CRS (the same as --kind llm)")] = False,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="LLM CRS model: GGUF file, 'shipped' (default) or 'gemma3-270m'")
    ] = None,
) -> None:
    """Serve a built-in CRS: POST /recommend (JSON contract), POST /v1/chat/completions, GET /health."""
    from rich.console import Console

    from tastesim.cli.terminal import fail, offline
    from tastesim.crs.builtin import LLM_CRS_MODEL, build_baseline, build_llm, build_popularity
    from tastesim.crs.server import THREADS, crs_server
    from tastesim.data.dataset import DataFormatError
    from tastesim.llm.backend import LLMError
    from tastesim.scenario import LlamaCppSettings, Scenario, ScenarioError, load_scenario
    from tastesim.world.build import load_scenario_dataset, profiles_for

    offline()
    kind = "llm" if llm else kind
    if kind not in ("retrieval", "popularity", "llm"):
        fail(f"--kind {kind}: choose retrieval, popularity or llm")
    console = Console(stderr=True)
    threads = THREADS
    try:
        config = load_scenario(scenario) if scenario else Scenario()
        with console.status(f"loading the catalog and building the {kind} CRS"):
            dataset = load_scenario_dataset(config)
            if kind == "llm":
                settings = LlamaCppSettings(model=model or LLM_CRS_MODEL, parallel=2, cache_dir=config.cache_dir)
                crs = build_llm(dataset, settings, seed=config.seed)
                threads = settings.parallel  # one request per llama.cpp slot
            elif kind == "popularity":
                crs = build_popularity(config, dataset, profiles_for(dataset, config))
            else:
                crs = build_baseline(config, list(dataset.items["item"]), profiles_for(dataset, config))
    except (ScenarioError, DataFormatError, LLMError) as err:
        fail(str(err))
    try:
        server = crs_server(crs, host, port, threads=threads)
    except OSError as err:
        fail(f"cannot listen on {host}:{port}: {err.strerror or err}")
    console.print(f"{kind} CRS on {server.url}/recommend ({len(crs.item_ids)} items); Ctrl-C stops it")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        server.server_close()
