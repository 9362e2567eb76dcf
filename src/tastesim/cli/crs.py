"""``tastesim serve-crs``: serve the built-in baseline CRS over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["serve_crs"]


def serve_crs(
    scenario: Annotated[
        Path | None, typer.Argument(help="scenario whose dataset and embedder to use (default: built-in ML-100K)")
    ] = None,
    port: Annotated[int, typer.Option("--port", "-p", help="port to listen on (0 = a free one)")] = 8765,
    host: Annotated[str, typer.Option("--host", help="address to bind; keep the loopback default")] = "127.0.0.1",
) -> None:
    """Serve the baseline CRS: POST /recommend (JSON contract), POST /v1/chat/completions, GET /health."""
    from rich.console import Console

    from tastesim.cli.terminal import fail, offline
    from tastesim.crs.builtin import build_baseline
    from tastesim.crs.server import crs_server
    from tastesim.data.dataset import DataFormatError
    from tastesim.llm.backend import LLMError
    from tastesim.scenario import Scenario, ScenarioError, load_scenario
    from tastesim.world.build import load_scenario_dataset, profiles_for

    offline()
    console = Console(stderr=True)
    try:
        config = load_scenario(scenario) if scenario else Scenario()
        with console.status("loading the catalog and embedding items"):
            dataset = load_scenario_dataset(config)
            crs = build_baseline(config, list(dataset.items["item"]), profiles_for(dataset, config))
    except (ScenarioError, DataFormatError, LLMError) as err:
        fail(str(err))
    try:
        server = crs_server(crs, host, port)
    except OSError as err:
        fail(f"cannot listen on {host}:{port}: {err.strerror or err}")
    console.print(f"baseline CRS on {server.url}/recommend ({len(crs.item_ids)} items); Ctrl-C stops it")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        server.server_close()
