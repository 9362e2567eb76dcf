"""Binary classification metrics and threshold choice (numpy only)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

__all__ = ["auc", "best_threshold", "classification"]


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half); NaN when a class is missing."""
    labels = labels.astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _f1(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    tp = float((pred & truth).sum())
    precision = tp / max(float(pred.sum()), 1.0)
    recall = tp / max(float(truth.sum()), 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def classification(pred: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, precision/recall/F1 of the positive class and F1 of the negative class."""
    pred, labels = pred.astype(bool), labels.astype(bool)
    precision, recall, f1 = _f1(pred, labels)
    _, specificity, f1_neg = _f1(~pred, ~labels)
    return {
        "accuracy": float((pred == labels).mean()),
        "balanced_accuracy": (recall + specificity) / 2,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "f1_negative": f1_neg,
    }


def best_threshold(scores: np.ndarray, labels: np.ndarray, metric: str) -> float:
    """The threshold (predict positive when ``score > t``) maximising ``metric`` of :func:`classification`."""
    candidates = np.unique(np.quantile(scores, np.linspace(0, 1, 201)))
    candidates = np.concatenate([[candidates[0] - 1], candidates])
    values = [classification(scores > t, labels)[metric] for t in candidates]
    return float(candidates[int(np.argmax(values))])
