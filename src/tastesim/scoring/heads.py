"""Two-headed scorers over :data:`~tastesim.scoring.features.FEATURES`: interaction and like log-odds.

``hidden=0`` is logistic regression (the learned ensemble); ``hidden>0`` is a small MLP (the distilled
scorer). Inputs are standardised with statistics stored in the module, so a saved state is self-contained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tastesim.scoring.statistical import init_parameters, one_thread

__all__ = ["HeadTargets", "Heads", "fit_heads"]

_MIN_STEPS = 300  # optimiser steps at least, whatever the data size


class Heads(nn.Module):
    """Standardise, then a linear map (``hidden=0``) or a two-layer ReLU MLP, to ``(interact, like)`` logits."""

    def __init__(self, n_features: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        if hidden:
            self.net = nn.Sequential(
                nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2)
            )
        else:
            self.net = nn.Sequential(nn.Linear(n_features, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(..., 2)``: column 0 interaction, column 1 like."""
        return self.net((x - self.mean) / self.scale)

    def logits(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Numpy convenience: interaction and like log-odds for features ``(..., F)``."""
        with torch.inference_mode(), one_thread():
            out = self(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
        return out[..., 0], out[..., 1]


@dataclass(frozen=True)
class HeadTargets:
    """Training targets per row: interaction label, like target (soft allowed) and where it is defined."""

    interact: np.ndarray  # (N,) 0/1
    like: np.ndarray  # (N,) in [0, 1]
    like_known: np.ndarray  # (N,) bool: rows whose like target counts


def fit_heads(
    x: np.ndarray,
    targets: HeadTargets,
    *,
    hidden: int,
    generator: torch.Generator,
    epochs: int = 4,
    batch_size: int = 1024,
    lr: float = 0.01,
    weight_decay: float = 1e-5,
) -> Heads:
    """Fit :class:`Heads` by minibatch Adam on binary cross-entropy of both heads; ``generator`` shuffles."""
    heads = Heads(x.shape[1], hidden)
    init_parameters(heads.net, generator)
    features = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    heads.mean.copy_(features.mean(0))
    heads.scale.copy_(features.std(0).clamp_min(1e-3))
    interact = torch.from_numpy(targets.interact.astype(np.float32))
    like = torch.from_numpy(targets.like.astype(np.float32))
    known = torch.from_numpy(targets.like_known)
    optimiser = torch.optim.Adam(heads.net.parameters(), lr=lr, weight_decay=weight_decay)
    with one_thread():
        _train(
            heads,
            features,
            (interact, like, known),
            optimiser,
            generator=generator,
            epochs=epochs,
            batch_size=batch_size,
        )
    return heads.eval()


def _train(
    heads: Heads,
    features: torch.Tensor,
    targets: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    optimiser: torch.optim.Optimizer,
    *,
    generator: torch.Generator,
    epochs: int,
    batch_size: int,
) -> None:
    interact, like, known = targets
    loss_fn = nn.BCEWithLogitsLoss()
    batches = -(-len(features) // batch_size)
    for _ in range(max(epochs, -(-_MIN_STEPS // batches))):  # small data: more epochs, enough steps
        order = torch.randperm(len(features), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            out = heads(features[batch])
            mask = known[batch]
            loss = loss_fn(out[:, 0], interact[batch])
            if mask.any():
                loss = loss + loss_fn(out[mask, 1], like[batch][mask])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
