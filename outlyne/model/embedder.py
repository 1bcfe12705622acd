"""The one interface every stage after the encoder depends on.

Concepts, search, re-ranking and evaluation only need "images or texts in, unit vectors out". Keeping that
behind a Protocol lets tests use deterministic fakes (as simonw/llm does) and keeps OpenVINO in encoder.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

ImageInput = np.ndarray | Image.Image


@runtime_checkable
class Embedder(Protocol):
    identity: str
    """Stable key of (model identity, precision, exporter version); caches of embeddings are keyed by it."""

    embed_dim: int
    logit_scale: float
    """The checkpoint's raw logit scale (apply exp() before use), stored with cached text embeddings."""

    logit_bias: float
    lowercase_prompts: bool
    """SigLIP2 was trained on lowercase text: prompts are lowercased before tokenizing when True."""

    def embed_images(self, images: Sequence[ImageInput], batch_size: int | None = None) -> np.ndarray:
        """(n, embed_dim) float32, each row L2-normalized. RGB uint8 arrays or PIL images."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, embed_dim) float32, each row L2-normalized."""
        ...


def l2_normalize(vectors: np.ndarray, axis: int = -1) -> np.ndarray:
    """Unit-length rows; an all-zero row stays zero instead of becoming NaN."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=axis, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
