"""One random tree per run: every stream is derived from the scenario seed, a stream name, a step and a key.

Deriving a fresh generator per (stream, step, key) instead of carrying generator state makes a resumed run
draw exactly what an uninterrupted run draws, with no generator state to checkpoint. Stream names are the
members of :class:`Stream`, never free strings, so two parts of the code cannot share a stream by accident.
"""

from __future__ import annotations

import zlib
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["RandomTree", "Stream"]


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
    NOISE = "noise"  # typos of the noisy query style (keyed by the text)
    CONVERSATION_PLAN = "conversation-plan"  # who talks, in which style
    INTEREST = "interest"  # what a conversation is about (keyed by session)
    TRANSCRIPTS = "transcripts"  # which conversations are saved whole
    ENVIRONMENT = "environment"  # Gymnasium episodes (keyed by episode)
    POLICY = "policy"  # a baseline policy's draws in an evaluation


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

    def torch_generator(self, stream: Stream, step: int = 0) -> torch.Generator:
        """A torch generator seeded from the stream (torch is imported on first use)."""
        import torch

        return torch.Generator().manual_seed(self.integer_seed(stream, step))
