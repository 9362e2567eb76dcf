"""Write ``fidelity.json`` and ``fidelity.md`` (tables plus the published figures to compare with)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tastesim.eval.fidelity import ABLATION_METRICS, BASELINES, COMPONENTS, RATIOS
from tastesim.paths import atomic_write_text
from tastesim.scoring.features import FEATURE_GROUPS

__all__ = ["PUBLISHED", "write_report"]

PUBLISHED = {
    "seed_paper_yelp.auc": 0.674,
    "simuser_movielens.discrimination.1_1.accuracy": 0.791,
    "simuser_movielens.discrimination.1_1.f1": 0.777,
    "agent4rec_movielens.discrimination.1_1.accuracy": 0.691,
    "agent4rec_movielens.discrimination.1_1.f1": 0.698,
}
_ABLATION_TITLES = ("AUC", "balanced acc", "F1 like", "F1 dislike", "1:1 F1", "1:9 F1", "1:9 pick")


def _cell(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _table(metrics: dict[str, float], columns: list[tuple[str, str]]) -> list[str]:
    lines = ["| component | " + " | ".join(title for title, _ in columns) + " |"]
    lines.append("|---" * (len(columns) + 1) + "|")
    for name in COMPONENTS:
        label = f"{name} (baseline)" if name in BASELINES else name
        lines.append(f"| {label} | " + " | ".join(_cell(metrics.get(f"{name}.{key}")) for _, key in columns) + " |")
    return lines


def _row(label: str, metrics: dict[str, float], prefix: str) -> str:
    return f"| {label} | " + " | ".join(_cell(metrics.get(f"{prefix}.{m}")) for m in ABLATION_METRICS) + " |"


def _ablations(metrics: dict[str, float], facts: dict) -> list[str]:
    """The item-profile x memory ablation and the feature-group ablation of the distilled scorer."""
    head = ["| distilled scorer | " + " | ".join(_ABLATION_TITLES) + " |", "|---" * (len(_ABLATION_TITLES) + 1) + "|"]
    lines = ["## Ablations: item profiles x memory features (distilled scorer, same pairs)", "", *head]
    for variant in facts.get("variants", []):
        lines.append(_row(f"{variant} reasons, with memory features", metrics, f"ablation.{variant}.memory"))
        lines.append(_row(f"{variant} reasons, without memory features", metrics, f"ablation.{variant}.no_memory"))
    for name in BASELINES:
        lines.append(_row(f"{name} (baseline)", metrics, name))
    main = facts.get("main_variant", "")
    lines += ["", f"## Ablations: feature groups ({main} reasons; distilled scorer retrained without each group)", ""]
    lines += head
    lines.append(_row("all features", metrics, f"ablation.{main}.memory"))
    for group in FEATURE_GROUPS:
        lines.append(_row(f"without {group}", metrics, f"features.without {group}"))
    lines.append(_row("previous features only (before personal taste)", metrics, "features.previous features"))
    return lines


def write_report(metrics: dict[str, float], facts: dict, out: Path, command: str) -> tuple[Path, Path]:
    """Write both files into ``out``; ``command`` (the command line that produced them) is recorded."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {**metrics, "published": PUBLISHED, "facts": facts, "command": command}
    json_path = out / "fidelity.json"
    atomic_write_text(json_path, json.dumps(payload, indent=2, allow_nan=True) + "\n")
    like = [("AUC", "auc"), ("balanced acc", "balanced_accuracy"), ("F1 like", "f1_like"), ("F1 dislike", "f1_dislike")]
    lines = [
        f"# Fidelity on {facts['dataset']}",
        "",
        f"`{command}`",
        "",
        f"{facts['users']} users, {facts['test_ratings']} held-out ratings ({facts['test_like_share']:.1%} likes); "
        "thresholds, weights and the factorisations' sizes chosen on the validation part of the training data "
        f"(explicit MF {facts.get('mf_factors')} factors, ridge {facts.get('mf_reg')}; implicit ALS "
        f"{facts.get('als_factors')} factors, alpha {facts.get('als_alpha')}).",
        "",
        "## Held-out like prediction",
        "",
        *_table(metrics, like),
    ]
    for ratio in RATIOS:
        cols = [(m, f"discrimination.1_{ratio}.{m}") for m in ("accuracy", "precision", "recall", "f1", "auc", "pick")]
        lines += ["", f"## Discrimination 1:{ratio} (rated vs never-rated)", "", *_table(metrics, cols)]
    lines += ["", *_ablations(metrics, facts)]
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
    atomic_write_text(md_path, "\n".join(lines))
    return json_path, md_path
