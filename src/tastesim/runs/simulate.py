"""Run a scenario into an output folder, with checkpoints, resume and the final outputs.

Folder layout: ``scenario.yaml`` (resolved), ``profiles.jsonl``, ``memory/`` (the run's Chroma store: the
memories the run forms), ``memory-index/`` (``seed.json``: where the shared seed store is; ``agents.npz``: each
agent's real user; ``strengths/``: the strength log), ``checkpoint.npz`` (the driver's state) with
``checkpoint/`` (each population shard's), ``parts/step-NNNNNN.parquet`` (interactions per step), and at
the end ``metrics.parquet``, ``interactions.parquet``, ``summary.json`` and ``plots/*.png``
(``memory-error.txt`` if a memory writer failed). ``store_spec(scenario, out).open()`` reads the memories.

Crash safety: every ``checkpoint_every`` steps the memory writes are flushed and changed strengths logged,
every shard writes its state, then the driver's state and the metrics so far are written atomically (the
step it names is the checkpoint). Resuming loads the last checkpoint, drops interaction parts, memory
records and strength entries newer than it, and continues; random draws are derived from (seed, stream,
step, agent), so the resumed run ends exactly where an uninterrupted one does.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tastesim.agents.drift import item_vectors
from tastesim.catalog.profile import write_profiles
from tastesim.engine import ShardLost, build_shards
from tastesim.faults import crash_point
from tastesim.memory.protocol import MemoryWriterError, WriterStats
from tastesim.memory.seed import ensure_seed_store, seed_key, seed_spec
from tastesim.memory.store import StoreSpec
from tastesim.memory.view import AGENTS_FILE, AgentUsers
from tastesim.memory.working import WorkingMemory
from tastesim.paths import atomic_write, atomic_write_text, default_cache_dir
from tastesim.recommenders.http import RecommenderError
from tastesim.report.html import write_report
from tastesim.report.plots import write_plots
from tastesim.runs.outcome import Progress, RunError, RunResult, disk_full_stops, quiet
from tastesim.scenario import Scenario, load_scenario
from tastesim.world.build import Parts, build_parts, load_scenario_dataset, profiles_for, store_spec
from tastesim.world.drift_metrics import Groups, drift_headline, segment_labels
from tastesim.world.metrics import METRICS
from tastesim.world.model import TasteModel
from tastesim.world.shard import record_factory
from tastesim.world.shocks import ShockError, shocked_world

__all__ = ["checkpoint_memory", "resumable_scenario", "run_simulation"]

_DISK_FULL_BYTES = 16 * 2**20  # below this much free space, a failed store write is taken for a full disk
_SHARD_CHECKPOINTS = "checkpoint"  # the shards' checkpoint files, beside the driver's checkpoint.npz


def run_simulation(scenario: Scenario | None, out: Path, resume: bool = False, progress: Progress = quiet) -> RunResult:
    """Run (or resume) a slate simulation of one recommender into ``out``.

    Args:
        scenario: The scenario; ``None`` when resuming (read from ``out/scenario.yaml``).
        out: Output folder. A new run refuses a folder that already holds a run.
        resume: Continue the run in ``out`` from its last checkpoint.
        progress: Callback ``(phase, done, total)`` for progress display.
    """
    out = Path(out)
    with disk_full_stops(out):
        return _run(scenario, out, resume, progress)


def _run(scenario: Scenario | None, out: Path, resume: bool, progress: Progress) -> RunResult:
    """:func:`run_simulation`, with any error the user can act on as a :class:`RunError`."""
    started = time.perf_counter()
    scenario = _scenario_for(scenario, out, resume)
    if scenario.conversation is not None or scenario.arms:
        raise RunError(f"{scenario.name} is not a single slate simulation: run it with `tastesim run`")
    parts = _prepare(scenario, out, resume, progress)
    checkpoint = _read_checkpoint(out / "checkpoint.npz") if resume else None
    if checkpoint is not None and int(checkpoint[0]["shards"]) != scenario.execution.workers:
        raise RunError(
            f"{out} was checkpointed with {int(checkpoint[0]['shards'])} population shards and its scenario asks "
            f"for {scenario.execution.workers}: resume with execution.workers as it was"
        )
    spec, seed_written = _prepare_store(scenario, parts, out, progress)
    try:
        model = _open(scenario, parts, progress)
    except ShardLost as err:
        raise RunError(f"{err}; the run could not start") from err
    timing = {"setup_seconds": time.perf_counter() - started}
    try:
        try:
            _start(model, scenario, spec, out, checkpoint)
            step_seconds = _simulate(model, scenario, out, progress)
            progress("writing outputs", 0, 1)
            closing = time.perf_counter()
            stats = model.shards.close(model.steps)
            timing["final_flush_seconds"] = time.perf_counter() - closing
            seeded, usage = model.shards.seeded(), model.shards.usage()
        except BaseException:
            model.shards.abort()  # the writers stop however the run ends; what the last checkpoint flushed stays
            raise
        finally:
            model.shards.shutdown()
    except MemoryWriterError as err:
        raise _writer_failed(err, out) from err
    except ShardLost as err:
        raise RunError(
            f"{err}; the run stopped and resumes from its last checkpoint: run `tastesim run {out} --resume`"
        ) from err
    memory = {  # a memory formed again after its seeded one was forgotten replaces the seed record
        "memories": seeded + stats.records_in_store - stats.records_reformed,
        "seeded_memories": seeded,
        "run_store_records": stats.records_in_store,
        "seed_store": spec.seed.collection if spec.seed else None,
        "seed_records_written_this_session": seed_written,
    }
    summary = _finish(
        out, model, scenario, stats=stats, memory=memory, usage=usage, step_seconds=step_seconds, timing=timing,
        started=started,
    )  # fmt: skip
    return RunResult(out, summary)


def _start(
    model: TasteModel, scenario: Scenario, spec: StoreSpec, out: Path, checkpoint: tuple[dict, dict] | None
) -> None:
    """Open the shards' stores: a new run starts them empty; a resumed one restores its checkpoint first and
    brings the store back to it."""
    if checkpoint is None:
        atomic_write_text(out / "scenario.yaml", scenario.to_yaml())
        shutil.rmtree(out / "parts", ignore_errors=True)
        shutil.rmtree(out / _SHARD_CHECKPOINTS, ignore_errors=True)
        model.shards.open_store(spec, resume=None)
    else:
        state, rows = checkpoint
        step = int(state["steps"])
        model.shards.load(out / _SHARD_CHECKPOINTS, step)
        model.restore_driver(state)
        _restore_metrics(model, rows)
        model.shards.open_store(spec, resume=step)
        crash_point("resume")  # the stores rolled back to the checkpoint; newer parts not yet deleted
        for part in (out / "parts").glob("step-*.parquet"):
            if int(part.stem.split("-")[1]) > step:
                part.unlink()
    (out / "parts").mkdir(exist_ok=True)


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


def _simulate(model: TasteModel, scenario: Scenario, out: Path, progress: Progress) -> float:
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
        crash_point("step")  # stepped: memories on their way to the writers, the step's part not yet written
        assert model.last_table is not None
        _write_part(out / "parts" / f"step-{model.steps:06d}.parquet", model.last_table)
        if model.steps % scenario.memory.checkpoint_every == 0 or model.steps == scenario.steps:
            _write_checkpoint(out, model)
        progress("simulating", model.steps, scenario.steps)
    return step_seconds


def _write_part(path: Path, table: pa.Table) -> None:
    """One step's interactions, written atomically (a kill leaves no half-written part)."""
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def _writer_failed(err: MemoryWriterError, out: Path) -> RunError:
    """The user's message for a memory writer that failed or died; its traceback goes to a file in ``out``."""
    where = ""
    if err.child_traceback:
        log = out / "memory-error.txt"
        try:
            atomic_write_text(log, str(err) + "\n")
            where = f" (the writer's traceback is in {log})"
        except OSError:  # a full disk, most likely: the message below says so
            pass
    cause = "fix the cause"
    free = _free_bytes(out)
    if free is not None and free < _DISK_FULL_BYTES:  # Chroma words a full disk as a failed compaction
        cause = f"the disk holding {out} is full ({free / 2**20:.1f} MiB free): free some space"
    return RunError(
        f"{err.summary}{where}; the run stopped and resumes from its last checkpoint: "
        f"{cause}, then run `tastesim run {out} --resume`"
    )


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _prepare(scenario: Scenario, out: Path, resume: bool, progress: Progress) -> Parts:
    """Load the data and profiles, build the parts."""
    progress("loading data", 0, 1)
    dataset = load_scenario_dataset(scenario)
    out.mkdir(parents=True, exist_ok=True)
    profiles_path = out / "profiles.jsonl"
    progress("analysing items", 0, 1)
    profiles = profiles_for(dataset, scenario, profiles_path if resume and profiles_path.exists() else None)
    if not profiles_path.exists():
        write_profiles(profiles, profiles_path)
    progress("seeding memories", 0, 1)
    return build_parts(scenario, dataset, profiles)


def _prepare_store(scenario: Scenario, parts: Parts, out: Path, progress: Progress) -> tuple[StoreSpec, int]:
    """Make sure the seed store holds every real user's seeded memories (written once per content, in the
    cache folder or on the scenario's Chroma server), and write the run's memory index: where the seed store
    is and each agent's real user. Returns the run's store and the seed records written now."""
    progress("storing seeded memories", 0, 1)
    population, factory = parts.population, record_factory(parts.catalog)
    key = seed_key(population.user_ids, parts.user_memory, factory)
    seed = seed_spec(key, scenario.cache_dir or default_cache_dir(), scenario.memory.server)
    written = ensure_seed_store(seed, population.user_ids, parts.user_memory, factory)
    index = out / "memory-index"
    index.mkdir(parents=True, exist_ok=True)
    atomic_write_text(index / "seed.json", seed.to_json())
    AgentUsers(population.user_rows, population.user_ids).save(index / AGENTS_FILE)
    return store_spec(scenario, out), written


def _open(scenario: Scenario, parts: Parts, progress: Progress) -> TasteModel:
    """The model, its recommender and shocks, and the population's shards on the scenario's engine."""
    tables, population = parts.catalog.tables, parts.population
    rec_cfg = scenario.recommender
    labels = segment_labels(population, tuple(scenario.segments.by))
    vectors = item_vectors(tables, parts.catalog.bank)
    try:
        recommender, shocks = shocked_world(
            scenario, parts.catalog.item_ids, tables, vectors, labels, users=population.users
        )
    except ShockError as err:
        raise RunError(str(err)) from err
    groups = Groups.from_labels(labels, population.n_agents)
    progress("starting population shards", 0, 1)
    shards = build_shards(scenario, parts, groups, shocks, progress)
    try:
        return TasteModel(
            parts.catalog,
            population,
            None,
            recommender,
            None,
            seed=scenario.seed,
            slate_size=rec_cfg.slate_size,
            allow_repeats=rec_cfg.allow_repeats,
            activity=scenario.population.activity,
            drift=scenario.drift,
            segments=labels,
            shocks=shocks,
            retrain_every=rec_cfg.retrain_every,
            shards=shards,
        )
    except BaseException:
        shards.shutdown()
        raise


def _write_checkpoint(out: Path, model: TasteModel) -> None:
    """Flush the stores, have every shard write its state, then commit the driver's state naming the step."""
    step = model.steps
    model.shards.sync(step)
    crash_point("checkpoint-synced")  # the stores hold everything up to this step; no state written yet
    model.shards.save(out / _SHARD_CHECKPOINTS, step)
    crash_point("checkpoint-shards")  # every shard's state written; the driver's still names the last step
    rows = model.datacollector.get_model_vars_dataframe().to_dict(orient="list")
    state = model.driver_state()
    atomic_write(out / "checkpoint.npz", lambda tmp: np.savez(tmp, metrics_json=np.array(json.dumps(rows)), **state))
    model.shards.prune(out / _SHARD_CHECKPOINTS, step)


def _read_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, list]] | None:
    if not path.exists():
        return None
    with np.load(path) as data:
        state = {k: data[k] for k in data.files if k != "metrics_json"}
        rows = json.loads(str(data["metrics_json"]))
    return state, rows


def checkpoint_memory(out: Path) -> WorkingMemory:
    """The working memory of every agent at the last checkpoint of the run in ``out`` (rows = agents)."""
    with np.load(out / "checkpoint.npz") as data:
        step, count = int(data["steps"]), int(data["shards"])
    parts = []
    for k in range(count):
        name = f"shard-{k}" if count > 1 else "population"
        with np.load(out / _SHARD_CHECKPOINTS / f"{name}-step-{step:06d}.npz") as data:
            parts.append({f: data[f"memory_{f}"] for f in ("reason", "polarity", "category_mask", "strength",
                                                             "created", "last", "item")})  # fmt: skip
    n = sum(len(p["reason"]) for p in parts)
    memory = WorkingMemory(n, parts[0]["reason"].shape[1])
    for k, part in enumerate(parts):
        for name, values in part.items():
            getattr(memory, name)[k::count] = values
    return memory


def _restore_metrics(model: TasteModel, rows: dict[str, list]) -> None:
    for name in METRICS:
        model.datacollector.model_vars[name] = list(rows.get(name, []))


def _finish(
    out: Path,
    model: TasteModel,
    scenario: Scenario,
    *,
    stats: WriterStats,
    memory: dict,
    usage: list[dict],
    step_seconds: float,
    timing: dict[str, float],
    started: float,
) -> dict:
    finishing = time.perf_counter()
    metrics = model.datacollector.get_model_vars_dataframe().reset_index(drop=True)
    metrics.insert(0, "step", np.arange(1, len(metrics) + 1))
    atomic_write(out / "metrics.parquet", lambda tmp: metrics.to_parquet(tmp, index=False))
    crash_point("outputs")  # some outputs written, others not
    _concatenate(sorted((out / "parts").glob("step-*.parquet")), out / "interactions.parquet")
    write_plots(metrics, out / "plots")
    decisions = int(metrics["shown"].sum())
    summary = {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "steps": int(model.steps),
        "agents": len(model.agents),
        "items": len(model.catalog.item_ids),
        "recommender": scenario.recommender.name,
        "engine": scenario.execution.engine,
        "workers": scenario.execution.workers,
        "decisions": decisions,
        "clicks": int(metrics["clicks"].sum()),
        "likes": int(metrics["likes"].sum()),
        "click_rate": float(metrics["clicks"].sum() / max(decisions, 1)),
        "like_rate": float(metrics["likes"].sum() / max(metrics["clicks"].sum(), 1)),
        "final_cumulative_coverage": float(metrics["cumulative_coverage"].iloc[-1]),
        "mean_category_entropy": float(metrics["category_entropy"].mean()),
        "mean_novelty": float(metrics["novelty"].mean()),
        "holdout_hit_rate": float(metrics["holdout_hit_rate"].mean()),
        "memory_records": memory["memories"],
        "memory": memory,
        "drift": _write_drift(out, model),
        "shards": usage,  # per population shard: agents, state bytes, its process's peak RSS and CPU seconds
        "timing": {},
    }
    write_report_started = time.perf_counter()
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_report(out)  # reads summary.json; the timing below (the report's included) is written after it
    now = time.perf_counter()
    summary["timing"] = {
        "wall_seconds": round(now - started, 2),
        "setup_seconds": round(timing["setup_seconds"], 2),
        "step_seconds": round(step_seconds, 2),
        "decisions_per_second": round(decisions / step_seconds, 1) if step_seconds else None,
        "final_flush_seconds": round(timing.get("final_flush_seconds", 0.0), 2),
        "outputs_seconds": round(now - finishing, 2),
        "report_seconds": round(now - write_report_started, 2),
        "records_written_this_session": stats.records_added,
        "strength_updates_this_session": stats.records_updated,
        "store_write_seconds": round(stats.seconds_writing, 2),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _concatenate(parts: list[Path], target: Path) -> None:
    """One Parquet file from the per-step parts, streamed (one step in memory at a time), written atomically."""

    def write(tmp: Path) -> None:
        writer = None
        try:
            for part in parts:
                table = pq.read_table(part)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()

    atomic_write(target, write)


def _write_drift(out: Path, model: TasteModel) -> dict[str, float]:
    """``drift.parquet`` (every step and segment), ``segments.csv`` (last step), ``categories.parquet``."""
    drift = model.drift_tracker.frame()
    atomic_write(out / "drift.parquet", lambda tmp: drift.to_parquet(tmp, index=False))
    last = drift[(drift["attribute"] != "all") & (drift["step"] == drift["step"].max())]
    atomic_write(out / "segments.csv", lambda tmp: last.to_csv(tmp, index=False))
    categories = model.drift_tracker.stream_frame()
    atomic_write(out / "categories.parquet", lambda tmp: categories.to_parquet(tmp, index=False))
    return drift_headline(drift)
