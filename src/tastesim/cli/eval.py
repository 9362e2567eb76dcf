"""``tastesim eval``: fidelity of the decision models on real held-out data, and sim-vs-real agreement."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

__all__ = ["eval_app"]

eval_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Evaluate the decision models.")


@eval_app.command()
def fidelity(  # noqa: PLR0917 (a typer command takes its options as parameters)
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for fidelity.json and fidelity.md")],
    dataset: Annotated[str | None, typer.Option("--dataset", help="built-in dataset name (ml-100k)")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="dataset folder: generic CSVs, RecBole atomic files, Amazon or Yelp reviews"),
    ] = None,
    data_format: Annotated[str, typer.Option("--format", help="auto | atomic | generic | amazon | yelp")] = "auto",
    seed: Annotated[int, typer.Option(help="seed of every random draw")] = 0,
    train_fraction: Annotated[float, typer.Option(help="earlier share of each user's ratings used to train")] = 0.8,
    like_threshold: Annotated[float, typer.Option(help="rating at or above which an item is liked")] = 3.0,
    capacity: Annotated[int, typer.Option(help="working-memory capacity of each user")] = 16,
    embedder: Annotated[str, typer.Option(help="minilm | hashing (fast test double)")] = "minilm",
    analyser: Annotated[
        str, typer.Option(help="keyphrase | llamacpp | ollama (an LLM on review data: objective/subjective ablation)")
    ] = "keyphrase",
    model: Annotated[str | None, typer.Option(help="the LLM analyser's model (default: the backend's)")] = None,
    reviews_per_item: Annotated[int, typer.Option(help="reviews analysed per item on the subjective path")] = 5,
    stat_epochs: Annotated[int, typer.Option(help="training epochs of the statistical model")] = 20,
    cache_dir: Annotated[Path | None, typer.Option(help="profile/embedding cache")] = None,
) -> None:
    """Held-out like prediction and 1:1/1:3/1:9 discrimination for every component, three baselines and the
    ablations (item profiles x memory features; feature groups)."""
    from tastesim.cli.terminal import PhaseProgress, console, fail, offline

    offline()
    from tastesim.data.dataset import DataFormatError
    from tastesim.llm.backend import LLMError
    from tastesim.runs.evaluate import FidelityRequest, run_fidelity
    from tastesim.scenario import ScenarioError

    if (dataset is None) == (data_dir is None):
        fail("give exactly one of --dataset NAME or --data-dir DIR")
    request = dict(
        dataset=dataset,
        data_dir=data_dir,
        data_format=data_format,
        seed=seed,
        train_fraction=train_fraction,
        like_threshold=like_threshold,
        capacity=capacity,
        embedder=embedder,
        analyser=analyser,
        model=model,
        reviews_per_item=reviews_per_item,
        stat_epochs=stat_epochs,
        cache_dir=cache_dir,
    )
    try:
        parsed = FidelityRequest.model_validate(request)
        with PhaseProgress() as report:
            json_path, md_path = run_fidelity(parsed, out, shlex.join(["tastesim", *sys.argv[1:]]), report)
    except (ScenarioError, DataFormatError, ValueError, LLMError) as err:
        fail(str(err))
    console.print(md_path.read_text(encoding="utf-8"), highlight=False)
    console.print(f"wrote [bold]{json_path}[/] and [bold]{md_path}[/]", highlight=False)


@eval_app.command()
def agreement(  # noqa: PLR0917 (a typer command takes its options as parameters)
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for agreement.json and agreement.md")],
    dataset: Annotated[str | None, typer.Option("--dataset", help="built-in dataset name (ml-100k)")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="dataset folder: generic CSVs, RecBole atomic files, Amazon or Yelp reviews"),
    ] = None,
    data_format: Annotated[str, typer.Option("--format", help="auto | atomic | generic | amazon | yelp")] = "auto",
    recommenders: Annotated[
        str, typer.Option(help="comma-separated: random, popularity, itemknn, diverse, mf, sasrec")
    ] = "random,popularity,itemknn,mf,sasrec",
    steps: Annotated[int, typer.Option(help="simulated steps per recommender")] = 3,
    slate_size: Annotated[int, typer.Option(help="items per slate (and k of hit rate and NDCG)")] = 10,
    seed: Annotated[int, typer.Option(help="seed of every random draw")] = 0,
    embedder: Annotated[str, typer.Option(help="minilm | hashing (fast test double)")] = "minilm",
    decision: Annotated[str, typer.Option(help="decision model: logical | vote | learned | distilled")] = "distilled",
    stat_epochs: Annotated[int, typer.Option(help="training epochs of the statistical model")] = 20,
    cache_dir: Annotated[Path | None, typer.Option(help="profile/embedding/model cache")] = None,
) -> None:
    """Rank recommenders by real held-out data (hit rate, NDCG) and by the simulator (likes, clicks per
    slate) from the same starting state; report Kendall tau and Spearman between the rankings."""
    from tastesim.cli.terminal import PhaseProgress, console, fail, offline

    offline()
    from tastesim.data.dataset import DataFormatError
    from tastesim.runs.agreement import AgreementRequest, run_agreement
    from tastesim.scenario import ScenarioError

    if (dataset is None) == (data_dir is None):
        fail("give exactly one of --dataset NAME or --data-dir DIR")
    request = dict(
        dataset=dataset,
        data_dir=data_dir,
        data_format=data_format,
        recommenders=tuple(n.strip() for n in recommenders.split(",") if n.strip()),
        steps=steps,
        slate_size=slate_size,
        seed=seed,
        embedder=embedder,
        decision=decision,
        stat_epochs=stat_epochs,
        cache_dir=cache_dir,
    )
    try:
        parsed = AgreementRequest.model_validate(request)
        with PhaseProgress() as report:
            json_path, md_path = run_agreement(parsed, out, shlex.join(["tastesim", *sys.argv[1:]]), report)
    except ValidationError as err:
        fail(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in err.errors())
        )
    except (ScenarioError, DataFormatError, ValueError) as err:
        fail(str(err))
    console.print(md_path.read_text(encoding="utf-8"), highlight=False)
    console.print(f"wrote [bold]{json_path}[/] and [bold]{md_path}[/]", highlight=False)


def writer(  # noqa: PLR0917 (a typer command takes its options as parameters)
    sessions: Annotated[int, typer.Option("--sessions", "-n", min=1, help="sessions whose messages are written")] = 100,
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for writer_eval.json and .md")] = Path(
        "runs/writer-eval"
    ),
    scenario: Annotated[Path | None, typer.Option("--scenario", "-s", help="scenario (default: ML-100K)")] = None,
    writers: Annotated[
        str | None, typer.Option("--writers", "-w", help="comma-separated (default: every available one)")
    ] = None,
    prompts: Annotated[str, typer.Option("--prompts", help="prompt set of the LLM writers: v2 | v1")] = "v2",
    ollama_model: Annotated[str | None, typer.Option("--ollama-model", help="model of the ollama writer")] = None,
) -> None:
    """Write the same recalled reasons with every available writer; grounded/junk rates, distinct-2, tokens/s."""
    from rich.table import Table

    from tastesim.cli.terminal import PhaseProgress, console, fail, offline

    offline()
    from tastesim.data.dataset import DataFormatError
    from tastesim.llm.backend import LLMError
    from tastesim.runs.outcome import RunError
    from tastesim.runs.writer_eval import WriterEvalRequest, run_writer_eval, table_rows
    from tastesim.scenario import ScenarioError

    if prompts not in ("v1", "v2"):
        fail(f"--prompts {prompts}: choose v1 or v2")
    chosen = tuple(w.strip() for w in writers.split(",") if w.strip()) if writers else None
    request = WriterEvalRequest(out, sessions, scenario, chosen, prompts, ollama_model)
    try:
        with PhaseProgress() as report:
            summary = run_writer_eval(request, report)
    except (ScenarioError, DataFormatError, RunError, LLMError) as err:
        fail(str(err))
    rows = table_rows(summary)
    table = Table(title=f"writers on the same recalled reasons ({sessions} sessions, prompts {prompts})")
    for i, name in enumerate(rows[0]):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows[1:]:
        table.add_row(*row)
    console.print(table)
    console.print(f"examples and figures in [bold]{out}[/] (writer_eval.md, writer_eval.json)", highlight=False)


eval_app.command("writer")(writer)
