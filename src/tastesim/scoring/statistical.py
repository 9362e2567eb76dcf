"""The statistical model: a small SASRec-style sequential model (torch, CPU) with two calibrated heads.

A user's training history is a sequence of (item, liked) tokens. One causal self-attention block reads it
and, at every position, predicts the *next* item: whether the user interacts with a candidate (the next
real item against a uniformly sampled one) and whether the user likes it (rating >= like threshold). Both
heads are trained with binary cross-entropy on logits, and the sigmoid is applied exactly once, when a
probability is read, so the probabilities are calibrated (the published code applies it twice, which
pins its vote at 1).

After training, a user is summarised by the final hidden state over their history, projected per head, so
scoring any (user, item) pair at simulation time is one dot product plus an item bias.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

__all__ = [
    "SASRec",
    "StatSettings",
    "StatTables",
    "fit_sasrec",
    "init_parameters",
    "one_thread",
    "stat_tables",
    "torch_threads",
]

EpochProgress = Callable[[int, int], None]  # (epochs done, epochs)


@dataclass(frozen=True)
class StatSettings:
    """Architecture and training settings of the statistical model."""

    dim: int = 32
    max_len: int = 50
    epochs: int = 20
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4


class SASRec(nn.Module):
    """Item + polarity + position embeddings, one causal self-attention block, interact and like heads."""

    def __init__(self, n_items: int, settings: StatSettings) -> None:
        super().__init__()
        dim = settings.dim
        self.pad = n_items
        self.item = nn.Embedding(n_items + 1, dim)
        self.polarity = nn.Embedding(2, dim)
        self.position = nn.Embedding(settings.max_len, dim)
        self.block = nn.TransformerEncoderLayer(dim, 2, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.norm = nn.LayerNorm(dim)
        self.like_proj = nn.Linear(dim, dim)
        self.item_bias = nn.Embedding(n_items + 1, 1)
        self.like_bias = nn.Embedding(n_items + 1, 1)

    def encode(self, items: torch.Tensor, liked: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(B, T, d)`` of right-padded sequences (position ``t`` sees tokens ``<= t``)."""
        steps = items.shape[1]
        x = self.item(items) + self.polarity(liked.long()) + self.position(torch.arange(steps))
        causal = torch.triu(torch.ones(steps, steps, dtype=torch.bool), diagonal=1)
        return self.norm(self.block(x, src_mask=causal))

    def interact_logit(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Interaction log-odds of ``items`` given hidden states of matching shape."""
        return (hidden * self.item(items)).sum(-1) + self.item_bias(items).squeeze(-1)

    def like_logit(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Like log-odds of ``items`` given hidden states of matching shape."""
        return (self.like_proj(hidden) * self.item(items)).sum(-1) + self.like_bias(items).squeeze(-1)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run torch on ``count`` intra-op threads inside the block, restoring the previous number after."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_thread() -> AbstractContextManager[None]:
    """Run torch on one thread inside the block: these models are tiny, and on a busy 2-core machine torch's
    second thread spin-waits (measured 10x slower training with 2 threads than with 1 under load)."""
    return torch_threads(1)


def init_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise every parameter from ``generator`` (torch's default init draws from the global RNG).

    Matrices get ``N(0, 1/fan_in)``, norm weights 1, biases and bias embeddings 0.
    """
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("bias") or "bias." in name:
                param.zero_()
            elif "norm" in name:
                param.fill_(1.0)
            else:
                fan_in = param.shape[-1] if param.dim() > 1 else 1
                param.copy_(torch.randn(param.shape, generator=generator) / fan_in**0.5)


def _windows(sequences: Sequence[tuple[np.ndarray, np.ndarray]], max_len: int, pad: int) -> tuple[torch.Tensor, ...]:
    """Cut each (items, liked) sequence into windows of ``max_len + 1`` tokens, right-padded."""
    items, liked = [], []
    for seq_items, seq_liked in sequences:
        for start in range(0, max(len(seq_items) - 1, 0), max_len):
            items.append(seq_items[start : start + max_len + 1])
            liked.append(seq_liked[start : start + max_len + 1])
    out_items = torch.full((len(items), max_len + 1), pad, dtype=torch.long)
    out_liked = torch.zeros((len(items), max_len + 1), dtype=torch.long)
    for row, (i, lk) in enumerate(zip(items, liked, strict=True)):
        out_items[row, : len(i)] = torch.as_tensor(np.array(i), dtype=torch.long)
        out_liked[row, : len(lk)] = torch.as_tensor(np.array(lk), dtype=torch.long)
    return out_items, out_liked


def fit_sasrec(
    sequences: Sequence[tuple[np.ndarray, np.ndarray]],
    n_items: int,
    settings: StatSettings,
    generator: torch.Generator,
    progress: EpochProgress | None = None,
) -> SASRec:
    """Train on users' (item index, liked) sequences in time order; every draw comes from ``generator``.

    Args:
        sequences: One ``(items, liked)`` pair of 1-d arrays per user.
        n_items: Catalog size (item indices are ``0 .. n_items - 1``).
        settings: Model and training settings.
        generator: Seeded torch generator (initialisation, shuffling, negative sampling).
        progress: Called after each epoch with ``(done, total)``.
    """
    model = SASRec(n_items, settings)
    init_parameters(model, generator)
    items, liked = _windows(sequences, settings.max_len, n_items)
    rate = float(np.mean(np.concatenate([lk for _, lk in sequences]))) if len(sequences) else 0.5
    rate = min(max(rate, 0.01), 0.99)
    with torch.no_grad():  # start the like head at the base rate: calibrated from the first step
        model.like_bias.weight.fill_(float(np.log(rate / (1 - rate))))
    with one_thread():
        _train(model, items, liked, settings, generator=generator, progress=progress)
    return model.eval()


def _train(
    model: SASRec,
    items: torch.Tensor,
    liked: torch.Tensor,
    settings: StatSettings,
    *,
    generator: torch.Generator,
    progress: EpochProgress | None,
) -> None:
    n_items = model.pad
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    for epoch in range(settings.epochs):
        order = torch.randperm(len(items), generator=generator)
        for start in range(0, len(items), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            seq, lk = items[batch], liked[batch]
            hidden = model.encode(seq[:, :-1], lk[:, :-1])
            target, target_liked = seq[:, 1:], lk[:, 1:]
            valid = target != n_items
            hidden, target, target_liked = hidden[valid], target[valid], target_liked[valid]
            negative = torch.randint(0, n_items, target.shape, generator=generator)
            pos, neg = model.interact_logit(hidden, target), model.interact_logit(hidden, negative)
            loss = (
                loss_fn(pos, torch.ones_like(pos))
                + loss_fn(neg, torch.zeros_like(neg))
                + loss_fn(model.like_logit(hidden, target), target_liked.float())
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if progress is not None:
            progress(epoch + 1, settings.epochs)


@dataclass(frozen=True)
class StatTables:
    """The trained model as gather tables: ``logit = <user[u], item[i]> + bias[i]`` for each head."""

    user_interact: np.ndarray  # (U, d)
    user_like: np.ndarray  # (U, d)
    item: np.ndarray  # (I, d)
    interact_bias: np.ndarray  # (I,)
    like_bias: np.ndarray  # (I,)

    def rows(self, users: np.ndarray) -> StatTables:
        """The tables of ``users`` only, re-indexed ``0 .. len(users) - 1``."""
        return replace(self, user_interact=self.user_interact[users], user_like=self.user_like[users])

    def logits(self, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Interaction and like log-odds for index arrays of equal shape."""
        vectors = self.item[items]
        interact = np.einsum("...d,...d->...", self.user_interact[users], vectors) + self.interact_bias[items]
        like = np.einsum("...d,...d->...", self.user_like[users], vectors) + self.like_bias[items]
        return interact.astype(np.float32), like.astype(np.float32)

    def slate_logits(self, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`logits` for slates ``items`` ``(n, S)`` shown to ``users`` ``(n,)`` (user vectors gathered
        once per row)."""
        vectors = self.item[items]
        interact = np.einsum("nd,nsd->ns", self.user_interact[users], vectors) + self.interact_bias[items]
        like = np.einsum("nd,nsd->ns", self.user_like[users], vectors) + self.like_bias[items]
        return interact.astype(np.float32), like.astype(np.float32)


def stat_tables(model: SASRec, sequences: Sequence[tuple[np.ndarray, np.ndarray]], max_len: int) -> StatTables:
    """Summarise each user (one per sequence) by the final hidden state over their last ``max_len`` tokens."""
    dim = model.item.embedding_dim
    states = torch.zeros((len(sequences), dim))
    with torch.no_grad(), one_thread():
        for start in range(0, len(sequences), 512):
            chunk = sequences[start : start + 512]
            items = torch.full((len(chunk), max_len), model.pad, dtype=torch.long)
            liked = torch.zeros((len(chunk), max_len), dtype=torch.long)
            last = torch.zeros(len(chunk), dtype=torch.long)
            for row, (seq_items, seq_liked) in enumerate(chunk):
                tail = len(seq_items[-max_len:])
                items[row, :tail] = torch.as_tensor(np.array(seq_items[-max_len:]), dtype=torch.long)
                liked[row, :tail] = torch.as_tensor(np.array(seq_liked[-max_len:]), dtype=torch.long)
                last[row] = max(tail - 1, 0)
            hidden = model.encode(items, liked)
            states[start : start + len(chunk)] = hidden[torch.arange(len(chunk)), last]
        item = model.item.weight[:-1]
        return StatTables(
            user_interact=states.numpy().copy(),
            user_like=model.like_proj(states).numpy().copy(),
            item=item.numpy().copy(),
            interact_bias=model.item_bias.weight[:-1, 0].numpy().copy(),
            like_bias=model.like_bias.weight[:-1, 0].numpy().copy(),
        )
