"""The distilled scorer: a small MLP over the feature vector, trained on real labels and the ensemble.

Its like target is a blend of the real label and the learned ensemble's probability (the teacher), its
interaction target the real label (rated vs never rated). One forward pass scores a whole step.
"""

from __future__ import annotations

import numpy as np
import torch

from tastesim.scoring.heads import Heads, HeadTargets, fit_heads

__all__ = ["agreement", "fit_distilled"]


def fit_distilled(
    x: np.ndarray,
    targets: HeadTargets,
    teacher: Heads,
    generator: torch.Generator,
    *,
    hidden: int = 32,
    teacher_weight: float = 0.5,
) -> Heads:
    """Train the MLP; ``teacher_weight`` of the like target is the teacher's probability."""
    _, teacher_like = teacher.logits(x)
    soft = (1 - teacher_weight) * targets.like + teacher_weight / (1 + np.exp(-teacher_like))
    blended = HeadTargets(targets.interact, soft.astype(np.float32), targets.like_known)
    return fit_heads(x, blended, hidden=hidden, generator=generator, epochs=6)


def agreement(student: Heads, teacher: Heads, x: np.ndarray) -> tuple[float, float]:
    """Share of rows where student and teacher make the same like and the same interaction decision
    (probability above 0.5)."""
    s_int, s_like = student.logits(x)
    t_int, t_like = teacher.logits(x)
    return float(((s_like > 0) == (t_like > 0)).mean()), float(((s_int > 0) == (t_int > 0)).mean())
