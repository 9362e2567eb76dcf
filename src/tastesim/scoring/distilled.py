"""The distilled scorer: a small MLP over the feature vector that sees the slate, trained on real labels and
the ensemble.

Its like target is a blend of the real label and the learned ensemble's probability (the teacher), its
interaction target the real label (rated vs never rated). It learns slates of several sizes (each validation
slate cut to 2, 4 and its full width), so one set of weights decides pairs, small slates and full ones. One
forward pass scores a whole step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tastesim.scoring.heads import Heads, HeadTargets, fit_heads

__all__ = ["SLATE_WIDTHS", "agreement", "fit_distilled"]

SLATE_WIDTHS = (2, 4)  # cut widths learned besides the full slate


def fit_distilled(
    x: np.ndarray,
    targets: HeadTargets,
    teacher: Heads,
    generator: torch.Generator,
    *,
    hidden: int = 32,
    teacher_weight: float = 0.5,
    like_columns: Sequence[int] | None = None,
) -> Heads:
    """Train the slate MLP on slates ``x`` ``(P, W, F)`` with per-slot ``targets`` ``(P, W)``;
    ``teacher_weight`` of the like target is the teacher's (per-item) probability."""
    _, teacher_like = teacher.logits(x)
    soft = (1 - teacher_weight) * targets.like + teacher_weight / (1 + np.exp(-teacher_like))
    width = x.shape[1]
    copies = [(width, True)] + [(w, False) for w in SLATE_WIDTHS if w < width]
    xs, masks, interact, like, known = [], [], [], [], []
    for cut, full in copies:
        keep = np.arange(width) < cut
        xs.append(np.where(keep[None, :, None], x, 0))
        masks.append(np.broadcast_to(keep, targets.interact.shape))
        interact.append(targets.interact * keep)
        like.append(soft * keep)
        known.append(targets.like_known & keep if full else np.zeros_like(targets.like_known))  # likes once
    blended = HeadTargets(np.concatenate(interact), np.concatenate(like).astype(np.float32), np.concatenate(known))
    return fit_heads(
        np.concatenate(xs),
        blended,
        hidden=hidden,
        generator=generator,
        mask=np.concatenate(masks),
        like_columns=like_columns,
        epochs=6,
    )


def agreement(student: Heads, teacher: Heads, x: np.ndarray) -> tuple[float, float, float]:
    """On validation slates ``x`` ``(P, W, F)`` whose real item is column 0: the share of items where student
    and teacher make the same like decision (probability above 0.5), and how often each ranks the real
    item first for interaction (the student sees the slate, the teacher scores items one by one)."""
    s_int, s_like = student.logits(x)
    t_int, t_like = teacher.logits(x)
    if not len(x):
        return float("nan"), float("nan"), float("nan")
    like = float(((s_like > 0) == (t_like > 0)).mean())
    return like, float((s_int.argmax(-1) == 0).mean()), float((t_int.argmax(-1) == 0).mean())
