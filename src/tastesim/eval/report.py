"""Write ``fidelity.json`` and ``fidelity.md`` (tables plus the published figures to compare with)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tastesim.eval.fidelity import COMPONENTS, RATIOS

__all__ = ["PUBLISHED", "write_report"]

PUBLISHED = {
    "seed_paper_yelp.auc": 0.674,
    "simuser_movielens.discrimination.1_1.accuracy": 0.791,
    "simuser_movielens.discrimination.1_1.f1": 0.777,
    "agent4rec_movielens.discrimination.1_1.accuracy": 0.691,
    "agent4rec_movielens.discrimination.1_1.f1": 0.698,
}
_BASELINES = ("popularity", "bias")


def _cell(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _table(metrics: dict[str, float], columns: list[tuple[str, str]]) -> list[str]:
    lines = ["| component | " + " | ".join(title for title, _ in columns) + " |"]
    lines.append("|---" * (len(columns) + 1) + "|")
    for name in COMPONENTS:
        label = f"{name} (baseline)" if name in _BASELINES else name
        lines.append(f"| {label} | " + " | ".join(_cell(metrics.get(f"{name}.{key}")) for _, key in columns) + " |")
    return lines


def write_report(metrics: dict[str, float], facts: dict, out: Path, command: str) -> tuple[Path, Path]:
    """Write both files into ``out``; ``command`` (the command line that produced them) is recorded."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {**metrics, "published": PUBLISHED, "facts": facts, "command": command}
    json_path = out / "fidelity.json"
    json_path.write_text(json.dumps(payload, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    like = [("AUC", "auc"), ("balanced acc", "balanced_accuracy"), ("F1 like", "f1_like"), ("F1 dislike", "f1_dislike")]
    lines = [
        f"# Fidelity on {facts['dataset']}",
        "",
        f"`{command}`",
        "",
        f"{facts['users']} users, {facts['test_ratings']} held-out ratings ({facts['test_like_share']:.1%} likes); "
        "thresholds chosen on the validation part of the training data.",
        "",
        "## Held-out like prediction",
        "",
        *_table(metrics, like),
    ]
    for ratio in RATIOS:
        cols = [(m, f"discrimination.1_{ratio}.{m}") for m in ("accuracy", "precision", "recall", "f1", "auc", "pick")]
        lines += ["", f"## Discrimination 1:{ratio} (rated vs never-rated)", "", *_table(metrics, cols)]
    lines += [
        "",
        "## Published figures (LLM calls at every decision)",
        "",
        "| source | metric | value |",
        "|---|---|---|",
        "| seed paper (Yelp) | AUC | 0.674 |",
        "| SimUSER (MovieLens) | 1:1 accuracy / F1 | 0.791 / 0.777 |",
        "| Agent4Rec (MovieLens) | 1:1 accuracy / F1 | 0.691 / 0.698 |",
        "",
    ]
    md_path = out / "fidelity.md"
    md_path.write_text("\n".join(lines), encoding="utf-8")
    return json_path, md_path
