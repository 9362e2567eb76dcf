"""Run a scenario into an output folder, with checkpoints, resume and the final outputs.

Folder layout: ``scenario.yaml`` (resolved), ``profiles.jsonl``, ``memory/`` (Chroma), ``checkpoint.npz``,
``parts/step-NNNNNN.parquet`` (interactions per step), and at the end ``metrics.parquet``,
``interactions.parquet``, ``summary.json`` and ``plots/*.png`` (``memory-error.txt`` if a memory writer failed).

Crash safety: every ``checkpoint_every`` steps the memory writes are flushed, then the model state and the
metrics so far are written atomically. Resuming loads the last checkpoint, drops interaction parts and
memory records newer than it, restores strengths changed after it, and continues; random draws are
derived from (seed, stream, step), so the resumed run ends exactly where an uninterrupted one does.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tastesim.agents.drift import item_vectors
from tastesim.catalog.profile import write_profiles
from tastesim.memory.journal import MemoryJournal
from tastesim.memory.protocol import MemoryWriterError, WriterStats
from tastesim.memory.records import RecordFactory
from tastesim.recommenders.http import RecommenderError
from tastesim.report.html import write_report
from tastesim.report.plots import write_plots
from tastesim.runs.outcome import Progress, RunError, RunResult, quiet
from tastesim.scenario import Scenario, load_scenario
from tastesim.world.build import Parts, build_parts, load_scenario_dataset, profiles_for, scenario_decider, store_spec
from tastesim.world.drift_metrics import drift_headline, segment_labels
from tastesim.world.metrics import METRICS
from tastesim.world.model import TasteModel
from tastesim.world.shocks import ShockError, shocked_world

__all__ = ["resumable_scenario", "run_simulation"]


def run_simulation(
    scenario: Scenario | None, out: Path, resume: bool = False, progress: Progress = quiet
) -> RunResult:
    """Run (or resume) a slate simulation of one recommender into ``out``.

    Args:
        scenario: The scenario; ``None`` when resuming (read from ``out/scenario.yaml``).
        out: Output folder. A new run refuses a folder that already holds a run.
        resume: Continue the run in ``out`` from its last checkpoint.
        progress: Callback ``(phase, done, total)`` for progress display.
    """
    out = Path(out)
    started = time.perf_counter()
    scenario = _scenario_for(scenario, out, resume)
    if scenario.conversation is not None or scenario.arms:
        raise RunError(f"{scenario.name} is not a single slate simulation: run it with `tastesim run`")
    parts, factory = _prepare(scenario, out, resume, progress)
    try:
        # The writer processes stop however the run ends; what the last checkpoint flushed stays in the store.
        with MemoryJournal(store_spec(scenario, out), parts.memory, factory) as journal:
            model = _open(scenario, parts, journal, out, resume=resume, progress=progress)
            step_seconds = _simulate(model, journal, scenario, out, progress)
            progress("writing outputs", 0, 1)
            stats = journal.close()
    except MemoryWriterError as err:
        raise _writer_failed(err, out) from err
    summary = _finish(out, model, scenario, stats=stats, step_seconds=step_seconds, wall=time.perf_counter() - started)
    return RunResult(out, summary)


def resumable_scenario(out: Path) -> Scenario:
    """The scenario of the run in ``out``, to resume it.

    Raises:
        RunError: ``out`` holds no run.
    """
    if not (out / "scenario.yaml").exists():
        raise RunError(f"{out} holds no run to resume (no scenario.yaml)")
    return load_scenario(out / "scenario.yaml")


def _scenario_for(scenario: Scenario | None, out: Path, resume: bool) -> Scenario:
    if resume:
        return resumable_scenario(out)
    if scenario is None:
        raise RunError("a new run needs a scenario")
    if (out / "scenario.yaml").exists():
        raise RunError(f"{out} already holds a run: resume it with --resume or choose another --out")
    return scenario


def _simulate(model: TasteModel, journal: MemoryJournal, scenario: Scenario, out: Path, progress: Progress) -> float:
    """Step the model to the end, checkpointing as the scenario says; the seconds spent stepping."""
    step_seconds = 0.0
    while model.steps < scenario.steps:
        tick = time.perf_counter()
        try:
            model.step()
        except RecommenderError as err:
            resume_with = f"resume it with `tastesim run {out} --resume`"
            raise RunError(f"{err}; the run stopped after step {model.steps}: {resume_with}") from err
        step_seconds += time.perf_counter() - tick
        model.last_interactions.to_parquet(out / "parts" / f"step-{model.steps:06d}.parquet", index=False)
        if model.steps % scenario.memory.checkpoint_every == 0 or model.steps == scenario.steps:
            journal.sync()
            _write_checkpoint(out / "checkpoint.npz", model)
        progress("simulating", model.steps, scenario.steps)
    return step_seconds


def _writer_failed(err: MemoryWriterError, out: Path) -> RunError:
    """The user's message for a memory writer that failed or died; its traceback goes to a file in ``out``."""
    where = ""
    if err.child_traceback:
        log = out / "memory-error.txt"
        log.write_text(str(err) + "\n", encoding="utf-8")
        where = f" (the writer's traceback is in {log})"
    return RunError(
        f"{err.summary}{where}; the run stopped and resumes from its last checkpoint: "
        f"fix the cause, then run `tastesim run {out} --resume`"
    )


def _prepare(scenario: Scenario, out: Path, resume: bool, progress: Progress) -> tuple[Parts, RecordFactory]:
    """Load the data and profiles, build the parts and the factory of the run's store records."""
    progress("loading data", 0, 1)
    dataset = load_scenario_dataset(scenario)
    out.mkdir(parents=True, exist_ok=True)
    profiles_path = out / "profiles.jsonl"
    progress("analysing items", 0, 1)
    profiles = profiles_for(dataset, scenario, profiles_path if resume and profiles_path.exists() else None)
    if not profiles_path.exists():
        write_profiles(profiles, profiles_path)
    progress("seeding memories", 0, 1)
    parts = build_parts(scenario, dataset, profiles)
    tables = parts.catalog.tables
    factory = RecordFactory(
        parts.catalog.bank.texts,
        parts.catalog.bank.vectors,
        parts.catalog.item_ids,
        [tables.categories[c] for c in tables.primary],
    )
    return parts, factory


def _open(
    scenario: Scenario, parts: Parts, journal: MemoryJournal, out: Path, *, resume: bool, progress: Progress
) -> TasteModel:
    """Build the model; for a resumed run, restore it and bring the store back to the checkpoint."""
    tables = parts.catalog.tables
    rec_cfg = scenario.recommender
    labels = segment_labels(parts.population, tuple(scenario.segments.by))
    try:
        vectors = item_vectors(tables, parts.catalog.bank)
        users = parts.population.users
        recommender, shocks = shocked_world(scenario, parts.catalog.item_ids, tables, vectors, labels, users=users)
    except ShockError as err:
        raise RunError(str(err)) from err
    model = TasteModel(
        parts.catalog,
        parts.population,
        parts.memory,
        recommender,
        scenario_decider(scenario, parts, progress),
        seed=scenario.seed,
        slate_size=rec_cfg.slate_size,
        allow_repeats=rec_cfg.allow_repeats,
        activity=scenario.population.activity,
        journal=journal,
        drift=scenario.drift,
        segments=labels,
        shocks=shocks,
        retrain_every=rec_cfg.retrain_every,
    )
    checkpoint = _read_checkpoint(out / "checkpoint.npz") if resume else None
    if checkpoint is None:
        (out / "scenario.yaml").write_text(scenario.to_yaml(), encoding="utf-8")
        shutil.rmtree(out / "parts", ignore_errors=True)
        journal.restart()
    else:
        state, rows = checkpoint
        model.restore(state)
        _restore_metrics(model, rows)
        journal.reconcile(model.steps)
        for part in (out / "parts").glob("step-*.parquet"):
            if int(part.stem.split("-")[1]) > model.steps:
                part.unlink()
    (out / "parts").mkdir(exist_ok=True)
    journal.writer.ready()  # a store the writers cannot open ends the run now, not at the first checkpoint
    return model


def _write_checkpoint(path: Path, model: TasteModel) -> None:
    rows = model.datacollector.get_model_vars_dataframe().to_dict(orient="list")
    tmp = path.with_name("checkpoint.tmp.npz")
    np.savez(tmp, metrics_json=np.array(json.dumps(rows)), **model.state())
    tmp.replace(path)


def _read_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, list]] | None:
    if not path.exists():
        return None
    with np.load(path) as data:
        state = {k: data[k] for k in data.files if k != "metrics_json"}
        rows = json.loads(str(data["metrics_json"]))
    return state, rows


def _restore_metrics(model: TasteModel, rows: dict[str, list]) -> None:
    for name in METRICS:
        model.datacollector.model_vars[name] = list(rows.get(name, []))


def _finish(
    out: Path, model: TasteModel, scenario: Scenario, *, stats: WriterStats, step_seconds: float, wall: float
) -> dict:
    metrics = model.datacollector.get_model_vars_dataframe().reset_index(drop=True)
    metrics.insert(0, "step", np.arange(1, len(metrics) + 1))
    metrics.to_parquet(out / "metrics.parquet", index=False)
    parts = sorted((out / "parts").glob("step-*.parquet"))
    interactions = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    interactions.to_parquet(out / "interactions.parquet", index=False)
    write_plots(metrics, out / "plots")
    decisions = int(metrics["shown"].sum())
    summary = {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "steps": int(model.steps),
        "agents": len(model.agents),
        "items": len(model.catalog.item_ids),
        "recommender": scenario.recommender.name,
        "decisions": decisions,
        "clicks": int(metrics["clicks"].sum()),
        "likes": int(metrics["likes"].sum()),
        "click_rate": float(metrics["clicks"].sum() / max(decisions, 1)),
        "like_rate": float(metrics["likes"].sum() / max(metrics["clicks"].sum(), 1)),
        "final_cumulative_coverage": float(metrics["cumulative_coverage"].iloc[-1]),
        "mean_category_entropy": float(metrics["category_entropy"].mean()),
        "mean_novelty": float(metrics["novelty"].mean()),
        "holdout_hit_rate": float(metrics["holdout_hit_rate"].mean()),
        "memory_records": stats.records_in_store,
        "drift": _write_drift(out, model),
        "timing": {
            "wall_seconds": round(wall, 2),
            "step_seconds": round(step_seconds, 2),
            "decisions_per_second": round(decisions / step_seconds, 1) if step_seconds else None,
            "records_written_this_session": stats.records_added,
            "strength_updates_this_session": stats.records_updated,
            "store_write_seconds": round(stats.seconds_writing, 2),
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    write_report(out)
    return summary


def _write_drift(out: Path, model: TasteModel) -> dict[str, float]:
    """``drift.parquet`` (every step and segment), ``segments.csv`` (last step), ``categories.parquet``."""
    drift = model.drift_tracker.frame()
    drift.to_parquet(out / "drift.parquet", index=False)
    drift[(drift["attribute"] != "all") & (drift["step"] == drift["step"].max())].to_csv(
        out / "segments.csv", index=False
    )
    model.drift_tracker.stream_frame().to_parquet(out / "categories.parquet", index=False)
    return drift_headline(drift)
