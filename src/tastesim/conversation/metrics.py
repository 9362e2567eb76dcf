"""The stress report: latency percentiles, throughput, errors by kind, success by style, recall, abandonment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd

from tastesim.conversation.session import SessionResult
from tastesim.crs.protocol import ERROR_KINDS

__all__ = ["headline_rows", "stress_report", "turn_table"]


def turn_table(results: Sequence[SessionResult]) -> pd.DataFrame:
    """One row per turn of every session (the ``turns.parquet`` output)."""
    rows = [asdict(r) for result in results for r in result.records]
    columns = ["session_id", "turn", "style", "latency_s", "overhead_s", "error", "items", "unknown_items",
               "clicks", "accepted"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def _ms(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 2) if values.size else None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def stress_report(
    results: Sequence[SessionResult],
    *,
    planned: int,
    wall_s: float,
    writer_requests: int,
    writer_calls: int,
    writer_fallbacks: int,
) -> dict:
    """Headline figures of a stress run.

    Args:
        results: Finished sessions (unfinished ones, cut by the time bound, are ``planned - len(results)``).
        planned: Sessions planned.
        wall_s: Wall-clock seconds of the sessions.
        writer_requests: Texts asked of the (cached) writer.
        writer_calls: Texts the writer actually produced (LLM calls for the llm writer).
        writer_fallbacks: Texts the llm writer failed to produce, written by the template writer instead.
    """
    turns = turn_table(results)
    ok = turns[turns["error"] == ""]
    latency = ok["latency_s"].to_numpy()
    every = turns["latency_s"].to_numpy()
    outcomes = pd.Series([r.outcome for r in results], dtype=object)
    successes = [r.turns_to_success for r in results if r.turns_to_success is not None]
    recalls = [r.recall for r in results if r.recall is not None]
    by_style = {}
    for style in sorted({r.plan.style for r in results}):
        mine = [r for r in results if r.plan.style == style]
        by_style[style] = {
            "sessions": len(mine),
            "success_rate": _rate(sum(r.outcome == "success" for r in mine), len(mine)),
            "mean_recall": round(float(np.mean([r.recall for r in mine if r.recall is not None])), 4)
            if any(r.recall is not None for r in mine)
            else None,
        }
    interactions = len(turns) + len(successes)  # user messages: one per turn, plus each final acceptance
    return {
        "sessions_planned": planned,
        "sessions_finished": len(results),
        "sessions_unfinished": planned - len(results),
        "turns": len(turns),
        "requests_ok": len(ok),
        "errors": {kind: int((turns["error"] == kind).sum()) for kind in ERROR_KINDS},
        "error_rate": _rate(len(turns) - len(ok), len(turns)),
        "latency_ms": {
            "p50": _ms(latency, 50),
            "p95": _ms(latency, 95),
            "p99": _ms(latency, 99),
            "max": _ms(latency, 100),
        },
        "latency_all_requests_ms": {"p50": _ms(every, 50), "p95": _ms(every, 95), "p99": _ms(every, 99)},
        "client_overhead_ms_per_turn": round(float(turns["overhead_s"].mean()) * 1000, 3) if len(turns) else None,
        "throughput": {
            "wall_seconds": round(wall_s, 3),
            "sessions_per_second": round(len(results) / wall_s, 2) if wall_s else None,
            "requests_per_second": round(len(turns) / wall_s, 2) if wall_s else None,
        },
        "success_rate": _rate(int((outcomes == "success").sum()), len(results)),
        "abandonment_rate": _rate(int((outcomes == "abandoned").sum()), len(results)),
        "failed_sessions_rate": _rate(int((outcomes == "error").sum()), len(results)),
        "mean_turns_to_success": round(float(np.mean(successes)), 3) if successes else None,
        "mean_recall_at_k": round(float(np.mean(recalls)), 4) if recalls else None,
        "sessions_with_targets": len(recalls),
        "by_style": by_style,
        "writer": {
            "texts_requested": writer_requests,
            "texts_written": writer_calls,
            "calls_per_interaction": _rate(writer_calls, interactions),
            "fallbacks": writer_fallbacks,
        },
        "leaks_prevented": sum(r.leaks_prevented for r in results),
    }


def headline_rows(report: dict) -> list[tuple[str, str]]:
    """``(label, value)`` rows of a stress report's headline figures, for the end-of-run table."""

    def show(value: object, unit: str = "") -> str:
        return "n/a" if value is None else f"{value}{unit}"

    latency = report["latency_ms"]
    return [
        ("sessions finished / planned", f"{report['sessions_finished']} / {report['sessions_planned']}"),
        ("success rate", show(report["success_rate"])),
        ("abandonment rate", show(report["abandonment_rate"])),
        ("mean turns to success", show(report["mean_turns_to_success"])),
        ("mean recall@k of liked held-out items", show(report["mean_recall_at_k"])),
        ("error rate (turns)", show(report["error_rate"])),
        ("latency p50 / p95 / p99 (ms)", f"{show(latency['p50'])} / {show(latency['p95'])} / {show(latency['p99'])}"),
        ("sessions/s", show(report["throughput"]["sessions_per_second"])),
        ("writer calls per interaction", show(report["writer"]["calls_per_interaction"])),
        ("writer fallbacks", show(report["writer"]["fallbacks"])),
    ]
