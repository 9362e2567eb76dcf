"""The stress report: recall@k per turn, success and liked-anything rates, breakdowns by style and behaviour,
leak rate, writer grounding, latency percentiles, throughput and errors by kind."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd

from tastesim.conversation.session import SessionResult
from tastesim.conversation.writers import MessageLog
from tastesim.crs.protocol import ERROR_KINDS

__all__ = [
    "KS",
    "comparison_rows",
    "headline_rows",
    "recall_curve",
    "stress_report",
    "turn_table",
    "writer_report",
]

KS = (1, 10, 50)


def turn_table(results: Sequence[SessionResult]) -> pd.DataFrame:
    """One row per turn of every session (the ``turns.parquet`` output)."""
    rows = [asdict(r) for result in results for r in result.records]
    columns = ["session_id", "turn", "style", "behaviour", "latency_s", "overhead_s", "error", "items",
               "unknown_items", "rank", "clicks", "liked", "found", "leaky"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def recall_curve(ranks: Sequence[Sequence[int | None]], turns: int, ks: Sequence[int] = KS) -> dict[str, list]:
    """recall@k after each turn ``1..turns``: the share of sessions whose target ranked ``k`` or better at
    some turn up to that one (iEvaLM's per-turn recall). ``ranks[s][t]`` is the target's 1-based rank in
    the reply of turn ``t + 1`` of session ``s`` (``None``: absent or no reply); a session that ended early
    keeps its last value. ``None`` values in the curve mean there were no sessions."""
    out: dict[str, list] = {}
    for k in ks:
        curve = []
        for t in range(1, turns + 1):
            hits = [any(r is not None and r <= k for r in session[:t]) for session in ranks]
            curve.append(round(sum(hits) / len(hits), 4) if hits else None)
        out[f"@{k}"] = curve
    return out


def _ms(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 2) if values.size else None


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _outcomes(results: Sequence[SessionResult], turns: int) -> dict:
    n = len(results)
    recall = recall_curve([r.ranks for r in results], turns)
    return {
        "sessions": n,
        "success_rate": _rate(sum(r.outcome == "success" for r in results), n),
        "liked_anything_rate": _rate(sum(r.liked_any for r in results), n),
        "recall@10_turn1": recall["@10"][0],
        f"recall@10_turn{turns}": recall["@10"][-1],
        f"recall@50_turn{turns}": recall["@50"][-1],
    }


def _by(results: Sequence[SessionResult], key: Callable[[SessionResult], str], turns: int) -> dict:
    groups: dict[str, list[SessionResult]] = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
    return {name: _outcomes(groups[name], turns) for name in sorted(groups)}


def writer_report(writer: object, interactions: int) -> dict:
    """Grounding of the messages a writer wrote (``writer.log``), before (``raw``) and after the guard."""
    log: list[MessageLog] = list(writer.log)  # type: ignore[attr-defined]

    def rates(entries: list[MessageLog]) -> dict:
        n = len(entries)
        return {
            "messages": n,
            "grounded_rate": _rate(sum(e.final.grounded for e in entries), n),
            "junk_rate": _rate(sum(bool(e.final.junk) for e in entries), n),
            "fallback_rate": _rate(sum(e.source == "fallback" for e in entries), n),
            "raw_grounded_rate": _rate(sum(e.raw.grounded for e in entries), n),
            "raw_junk_rate": _rate(sum(bool(e.raw.junk) for e in entries), n),
        }

    queries = [e for e in log if e.kind == "query"]
    feedback = [e for e in log if e.kind == "feedback"]
    seconds = writer.llm_seconds  # type: ignore[attr-defined]
    return {
        "texts_requested": writer.requests,  # type: ignore[attr-defined]
        "texts_written": writer.calls,  # type: ignore[attr-defined]
        "calls_per_interaction": _rate(writer.calls, interactions),  # type: ignore[attr-defined]
        "fallbacks": writer.fallbacks,  # type: ignore[attr-defined]
        "retries": writer.retries,  # type: ignore[attr-defined]
        **{k: v for k, v in rates(log).items() if k != "messages"},
        "messages": len(log),
        "passed_rate": _rate(sum(e.final.passed for e in log), len(log)),
        "raw_passed_rate": _rate(sum(e.raw.passed for e in log), len(log)),
        "sources": dict(Counter(e.source for e in log)),
        "raw_problems": dict(Counter(e.raw.problem for e in log if e.raw.problem)),
        "problems": dict(Counter(e.final.problem for e in log if e.final.problem)),
        "tokens_per_second": round(writer.tokens / seconds, 1) if seconds else None,  # type: ignore[attr-defined]
        "by_style": {s: rates([e for e in queries if e.style == s]) for s in sorted({e.style for e in queries})},
        "by_feedback": {s: rates([e for e in feedback if e.style == s]) for s in sorted({e.style for e in feedback})},
    }


def stress_report(
    results: Sequence[SessionResult], *, planned: int, wall_s: float, turns: int, writer: object, protocol: str
) -> dict:
    """Headline figures of a stress run.

    Args:
        results: Finished sessions (unfinished ones, cut by the time bound, are ``planned - len(results)``).
        planned: Sessions planned.
        wall_s: Wall-clock seconds of the sessions.
        turns: The turn limit (recall is reported after each turn up to it).
        writer: The run's writer (its counters and message log).
        protocol: ``target`` or ``liked``.
    """
    table = turn_table(results)
    ok = table[table["error"] == ""]
    latency = ok["latency_s"].to_numpy()
    every = table["latency_s"].to_numpy()
    outcomes = Counter(r.outcome for r in results)
    n = len(results)
    successes = [r.turns_to_success for r in results if r.turns_to_success is not None]
    messages = sum(r.messages for r in results)
    return {
        "protocol": protocol,
        "sessions_planned": planned,
        "sessions_finished": n,
        "sessions_unfinished": planned - n,
        "turns": len(table),
        "requests_ok": len(ok),
        "success_rate": _rate(outcomes["success"], n),
        "recall": recall_curve([r.ranks for r in results], turns),
        "liked_anything_rate": _rate(sum(r.liked_any for r in results), n),
        "substitute_rate": _rate(sum(r.substitutes > 0 for r in results), n),
        "left_rate": _rate(outcomes["left"], n),
        "abandonment_rate": _rate(outcomes["abandoned"], n),
        "failed_sessions_rate": _rate(outcomes["error"], n),
        "mean_turns_to_success": round(float(np.mean(successes)), 3) if successes else None,
        "by_style": _by(results, lambda r: r.plan.style, turns),
        "by_behaviour": _by(results, lambda r: r.plan.behaviour, turns),
        "leak": {
            "messages": messages,
            "leaky": sum(r.leaky for r in results),
            "leak_rate": _rate(sum(r.leaky for r in results), messages),
            "rewritten": sum(r.rewritten for r in results),
            "replaced": sum(r.replaced for r in results),
            "residual_rate": _rate(sum(r.residual for r in results), messages),
        },
        "errors": {kind: int((table["error"] == kind).sum()) for kind in ERROR_KINDS},
        "error_rate": _rate(len(table) - len(ok), len(table)),
        "latency_ms": {q: _ms(latency, p) for q, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))},
        "latency_all_requests_ms": {"p50": _ms(every, 50), "p95": _ms(every, 95), "p99": _ms(every, 99)},
        "client_overhead_ms_per_turn": round(float(table["overhead_s"].mean()) * 1000, 3) if len(table) else None,
        "throughput": {
            "wall_seconds": round(wall_s, 3),
            "sessions_per_second": round(n / wall_s, 2) if wall_s else None,
            "requests_per_second": round(len(table) / wall_s, 2) if wall_s else None,
        },
        "writer": writer_report(writer, messages),
    }


def _show(value: object, unit: str = "") -> str:
    return "n/a" if value is None else f"{value}{unit}"


def _pair(a: object, b: object) -> str:
    return f"{_show(a)} / {_show(b)}"


def _curve(report: dict, k: int, turns: tuple[int, ...]) -> str:
    curve = report["recall"][f"@{k}"]
    return " / ".join(_show(curve[t - 1]) if t <= len(curve) else "n/a" for t in turns)


def headline_rows(report: dict) -> list[tuple[str, str]]:
    """``(label, value)`` rows of a stress report's conversation figures, for the end-of-run table."""
    last = len(report["recall"]["@10"])
    latency, leak, w = report["latency_ms"], report["leak"], report["writer"]
    return [
        ("sessions finished / planned", f"{report['sessions_finished']} / {report['sessions_planned']}"),
        (f"success: target shown ({report['protocol']} protocol)", _show(report["success_rate"])),
        *((f"recall@{k} after turn 1 / {last}", _curve(report, k, (1, last))) for k in KS),
        ("liked something shown (easy mode)", _show(report["liked_anything_rate"])),
        ("left for lack of progress / abandoned", _pair(report["left_rate"], report["abandonment_rate"])),
        ("leak rate (before / after rewriting)", _pair(leak["leak_rate"], leak["residual_rate"])),
        ("writer grounded rate (raw / sent)", _pair(w["raw_grounded_rate"], w["grounded_rate"])),
        ("writer junk rate (raw / sent)", _pair(w["raw_junk_rate"], w["junk_rate"])),
        ("writer fallback rate", _show(w["fallback_rate"])),
        ("writer calls per message", _show(w["calls_per_interaction"])),
        ("error rate (turns)", _show(report["error_rate"])),
        ("latency p50 / p95 / p99 (ms)", " / ".join(_show(latency[q]) for q in ("p50", "p95", "p99"))),
        ("sessions/s", _show(report["throughput"]["sessions_per_second"])),
    ]


def comparison_rows(reports: dict[str, dict]) -> list[list[str]]:
    """The side-by-side table: a header row, then one row per CRS (recall@1/10/50 after turns 1 and the last,
    success, liked-anything and leak rates, latency p50/p99, errors)."""
    if not reports:
        return []
    last = len(next(iter(reports.values()))["recall"]["@10"])
    header = ["CRS", *(f"R@{k} t1" for k in KS), *(f"R@{k} t{last}" for k in KS), "success", "liked anything",
              "leak rate", "p50 ms", "p99 ms", "errors"]  # fmt: skip
    rows = [header]
    for name, r in reports.items():
        rec = r["recall"]
        rows.append(
            [
                name,
                *(_show(rec[f"@{k}"][0]) for k in KS),
                *(_show(rec[f"@{k}"][-1]) for k in KS),
                _show(r["success_rate"]),
                _show(r["liked_anything_rate"]),
                _show(r["leak"]["leak_rate"]),
                _show(r["latency_ms"]["p50"]),
                _show(r["latency_ms"]["p99"]),
                str(sum(r["errors"].values())),
            ]
        )
    return rows
