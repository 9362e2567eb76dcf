"""One random tree per run: every stream is derived from the scenario seed, a stream name, a step and a key.

Deriving a fresh generator per (stream, step, key) instead of carrying generator state makes a resumed run
draw exactly what an uninterrupted run draws, with no generator state to checkpoint. Stream names are the
members of :class:`Stream`, never free strings, so two parts of the code cannot share a stream by accident.

Per-agent draws (:class:`RowDraws`) are *counter-based*: a uniform number is a hash of (seed, stream, step,
the row's keys, position, channel), so an agent draws the same numbers whatever batch it is decided in: a
population split into shards (Ray workers), a Gymnasium vector environment or a single environment.
"""

from __future__ import annotations

import zlib
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["KeyedDraws", "RandomTree", "RowDraws", "Stream"]


class Stream(StrEnum):
    """The named random streams of tastesim."""

    POPULATION = "population"  # which real users become agents
    ACTIVITY = "activity"  # who acts in a step
    RECOMMENDER = "recommender"  # a recommender's own draws in a step
    DECIDE = "decide"  # click / like draws of a step (or of a conversation turn, keyed by session)
    EXPLORE = "explore"  # exploratory click boosts of drift
    MESA = "mesa"  # Mesa's own ``model.random`` / ``model.rng``, reseeded every step
    RETRAIN = "retrain"  # a recommender refitted on the simulated log
    NEGATIVES = "negatives"  # never-rated items paired with validation positives
    TEST_NEGATIVES = "test negatives"  # the same for the held-out test part
    CHECK_USERS = "check users"  # validation users held back to check the distilled scorer
    STATISTICAL = "statistical"  # training the statistical model
    LEARNED = "learned"  # training the learned ensemble
    DISTILLED = "distilled"  # training the distilled scorer
    FACTORS = "factors"  # initialising the taste tables' factorisations (MF, ALS, SVD)
    NOISE = "noise"  # typos of the noisy query style (keyed by the text)
    CONVERSATION_PLAN = "conversation-plan"  # who talks, in which style
    INTEREST = "interest"  # what a conversation is about (keyed by session)
    BEHAVIOUR = "behaviour"  # how a conversation's user behaves: cooperative, changes mind, ... (keyed by session)
    PATIENCE = "patience"  # turns without progress a user bears before leaving (keyed by agent)
    TRANSCRIPTS = "transcripts"  # which conversations are saved whole
    ENVIRONMENT = "environment"  # Gymnasium episodes (keyed by episode)
    POLICY = "policy"  # a baseline policy's draws in an evaluation


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class RowDraws:
    """Uniform draws for a batch of rows, each a function of the row's keys only (see module docstring)."""

    def __init__(self, base: int, *keys: np.ndarray) -> None:
        state = np.full(np.shape(keys[0]) if keys else (0,), base, dtype=np.uint64)
        for key in keys:
            state = _mix(state ^ np.asarray(key).astype(np.uint64))
        self._state = state

    def __len__(self) -> int:
        return len(self._state)

    def uniform(self, width: int, channel: int = 0) -> np.ndarray:
        """``(rows, width)`` float64 draws in [0, 1); another ``channel`` gives independent draws."""
        with np.errstate(over="ignore"):
            lane = _mix(np.uint64(channel) * _GOLDEN + np.arange(1, width + 1, dtype=np.uint64))
            bits = _mix(self._state[:, None] ^ lane[None, :])
        return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))

    def take(self, rows: np.ndarray | slice) -> RowDraws:
        """The draws of a subset of the rows (the same numbers those rows draw here)."""
        view = RowDraws.__new__(RowDraws)
        view._state = self._state[rows]
        return view


class KeyedDraws:
    """Counter-based draws of one (seed, stream, step): :meth:`rows` binds them to a batch's keys."""

    def __init__(self, base: int) -> None:
        self.base = base

    def rows(self, *keys: np.ndarray) -> RowDraws:
        """Draws for rows identified by one or more key arrays of equal length (agent ids; episode, step)."""
        return RowDraws(self.base, *keys)


class RandomTree:
    """Named, step-indexed child generators of one ``numpy.random.SeedSequence``."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def generator(self, stream: Stream, step: int = 0, key: int | str | None = None) -> np.random.Generator:
        """A generator for ``stream`` at ``step`` (and ``key``: an agent, a session, a text).

        The same arguments always give the same draws.

        Raises:
            TypeError: ``stream`` is not a :class:`Stream`.
        """
        if not isinstance(stream, Stream):
            raise TypeError(f"random streams are Stream members, got {stream!r}")
        spawn: tuple[int, ...] = (zlib.crc32(stream.value.encode("utf-8")), step)
        if key is not None:
            spawn += (zlib.crc32(str(key).encode("utf-8")),)
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=spawn))

    def integer_seed(self, stream: Stream, step: int = 0, key: int | str | None = None) -> int:
        """A 63-bit integer seed drawn from the stream (for libraries that take a plain seed)."""
        return int(self.generator(stream, step, key).integers(0, 2**63 - 1))

    def keyed(self, stream: Stream, step: int = 0) -> KeyedDraws:
        """Counter-based per-row draws of ``stream`` at ``step`` (see :class:`RowDraws`)."""
        return KeyedDraws(self.integer_seed(stream, step))

    def torch_generator(self, stream: Stream, step: int = 0) -> torch.Generator:
        """A torch generator seeded from the stream (torch is imported on first use)."""
        import torch

        return torch.Generator().manual_seed(self.integer_seed(stream, step))
