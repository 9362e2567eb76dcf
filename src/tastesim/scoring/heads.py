"""Two-headed scorers over :data:`~tastesim.scoring.features.FEATURES`: interaction and like log-odds.

``hidden=0`` is logistic regression (the learned ensemble); ``hidden>0`` is a small MLP (the distilled
scorer). Inputs are standardised with statistics stored in the module, so a saved state is self-contained.

With ``slate=True`` the interaction head sees the slate: a person shown several items picks among them
(Agent4Rec shows the candidates together; RecSim's choice models are multinomial over the slate), so the
item's own interaction logit ``i`` is combined by one linear *choice* layer with where it stands in its
slate: ``i - logsumexp(slate)`` (its share of a softmax choice), its margin over the best other item, and
the log of the slate size. Empty slots (mask ``False``) take no part. The like head stays per item.

With ``like_columns`` the like head is a logistic regression on those input columns only (the compact
head for data with few like/dislike labels; see :func:`tastesim.scoring.bundle.fit_scorers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tastesim.scoring.statistical import init_parameters, one_thread

__all__ = ["HeadTargets", "Heads", "fit_heads"]

_MIN_STEPS = 300  # optimiser steps at least, whatever the data size


class Heads(nn.Module):
    """Standardise, then a linear map (``hidden=0``) or a two-layer ReLU MLP, to ``(interact, like)`` logits."""

    def __init__(
        self, n_features: int, hidden: int, slate: bool = False, like_columns: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.slate = slate
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        if hidden:
            self.net = nn.Sequential(
                nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2)
            )
        else:
            self.net = nn.Sequential(nn.Linear(n_features, 2))
        if slate:
            self.choice = nn.Linear(len(_CHOICE_INPUTS), 1)
        self.compact = like_columns is not None
        if like_columns is not None:
            self.register_buffer("like_index", torch.tensor(list(like_columns), dtype=torch.long))
            self.like = nn.Linear(len(like_columns), 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(..., 2)``: column 0 interaction, column 1 like. A slate model reads ``x`` as
        ``(..., slate, F)`` with ``mask`` ``(..., slate)`` marking the occupied slots (all when omitted)."""
        z = (x - self.mean) / self.scale
        out = self.net(z)
        if self.compact:
            out = torch.stack([out[..., 0], self.like(z[..., self.like_index]).squeeze(-1)], dim=-1)
        if not self.slate:
            return out
        own = out[..., 0]
        occupied = torch.ones_like(own, dtype=torch.bool) if mask is None else mask
        return torch.stack([self.choice(_choice_inputs(own, occupied)).squeeze(-1), out[..., 1]], dim=-1)

    def logits(self, x: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Numpy convenience: interaction and like log-odds for features ``(..., F)`` (a slate model:
        ``(..., slate, F)`` and the optional occupied-slot ``mask``)."""
        with torch.inference_mode(), one_thread():
            tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            out = self(tensor, None if mask is None else torch.from_numpy(np.ascontiguousarray(mask))).numpy()
        return out[..., 0], out[..., 1]


_CHOICE_INPUTS = ("own", "share", "margin", "log_size")
_EMPTY = -1e4  # the logit an empty slot takes in the slate's soft maximum


def _choice_inputs(own: torch.Tensor, occupied: torch.Tensor) -> torch.Tensor:
    """``(..., slate, 4)``: own logit, log softmax share, margin over the best other item, log slate size."""
    masked = own.masked_fill(~occupied, _EMPTY)
    share = masked - torch.logsumexp(masked, dim=-1, keepdim=True)
    if own.shape[-1] > 1:
        top = torch.topk(masked, 2, dim=-1).values
        best_other = torch.where(masked >= top[..., :1], top[..., 1:2], top[..., :1])
        margin = (masked - best_other).clamp(-10.0, 10.0)
    else:
        margin = torch.zeros_like(own)
    size = occupied.sum(-1, keepdim=True).clamp_min(1).float().log().expand_as(own)
    return torch.stack([own, share.clamp_min(-20.0), margin, size], dim=-1) * occupied.unsqueeze(-1)


@dataclass(frozen=True)
class HeadTargets:
    """Training targets per row (or per slate slot): interaction label, like target (soft allowed) and where
    it is defined."""

    interact: np.ndarray  # (N,) or (N, W) 0/1
    like: np.ndarray  # same shape, in [0, 1]
    like_known: np.ndarray  # same shape, bool: entries whose like target counts


def fit_heads(
    x: np.ndarray,
    targets: HeadTargets,
    *,
    hidden: int,
    generator: torch.Generator,
    mask: np.ndarray | None = None,
    like_columns: Sequence[int] | None = None,
    epochs: int = 4,
    batch_size: int = 1024,
    lr: float = 0.01,
    weight_decay: float = 1e-5,
) -> Heads:
    """Fit :class:`Heads` by minibatch Adam on binary cross-entropy of both heads; ``generator`` shuffles.

    ``x`` is ``(N, F)`` for a per-item model, or ``(N, W, F)`` slates with ``mask`` ``(N, W)`` (occupied
    slots) for a slate model; ``batch_size`` counts items either way. ``like_columns``: a compact like head.
    """
    slate = mask is not None
    heads = Heads(x.shape[-1], hidden, slate, like_columns)
    init_parameters(heads, generator)
    if slate:
        with torch.no_grad():  # the choice layer starts as the item's own logit
            heads.choice.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    features = torch.from_numpy(np.ascontiguousarray(x if slate else x[:, None, :], dtype=np.float32))
    occupied = torch.from_numpy(np.ascontiguousarray(mask if slate else np.ones((len(x), 1), dtype=bool)))
    rows = features[occupied]
    heads.mean.copy_(rows.mean(0))
    heads.scale.copy_(rows.std(0).clamp_min(1e-3))

    def shaped(values: np.ndarray, dtype: type) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(values if slate else values[:, None], dtype=dtype))

    columns = (shaped(targets.interact, np.float32), shaped(targets.like, np.float32), shaped(targets.like_known, bool))
    optimiser = torch.optim.Adam(heads.parameters(), lr=lr, weight_decay=weight_decay)
    with one_thread():
        _train(
            heads,
            (features, occupied),
            columns,
            optimiser,
            generator=generator,
            epochs=epochs,
            batch_size=max(1, batch_size // features.shape[1]),
        )
    return heads.eval()


def _train(
    heads: Heads,
    inputs: tuple[torch.Tensor, torch.Tensor],
    targets: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    optimiser: torch.optim.Optimizer,
    *,
    generator: torch.Generator,
    epochs: int,
    batch_size: int,
) -> None:
    features, occupied = inputs
    interact, like, known = targets
    loss_fn = nn.BCEWithLogitsLoss()
    batches = -(-len(features) // batch_size)
    for _ in range(max(epochs, -(-_MIN_STEPS // batches))):  # small data: more epochs, enough steps
        order = torch.randperm(len(features), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            mask = occupied[batch]
            out = heads(features[batch], mask if heads.slate else None)
            loss = loss_fn(out[..., 0][mask], interact[batch][mask])
            knows = known[batch] & mask
            if knows.any():
                loss = loss + loss_fn(out[..., 1][knows], like[batch][knows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
