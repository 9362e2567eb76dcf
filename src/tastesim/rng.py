"""One random tree per run: every stream is derived from the scenario seed, a stream name and a step.

Deriving a fresh generator per (stream, step) instead of carrying generator state makes a resumed run
draw exactly what an uninterrupted run draws, with no generator state to checkpoint.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["RandomTree"]


class RandomTree:
    """Named, step-indexed child generators of one ``numpy.random.SeedSequence``."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def generator(self, stream: str, step: int = 0) -> np.random.Generator:
        """A generator for ``stream`` at ``step``; the same arguments always give the same draws."""
        key = (zlib.crc32(stream.encode("utf-8")), step)
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))
