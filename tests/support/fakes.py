"""Deterministic fakes shared by the tests (no mocks: small real objects with known behaviour)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

from outlyne.model.embedder import ImageInput, l2_normalize


def _as_gray(image: ImageInput, size: int = 16) -> np.ndarray:
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    return np.asarray(pil.convert("L").resize((size, size), Image.Resampling.BILINEAR), np.float32) / 255


class FakeEncoder:
    """Images -> fixed random projection of a 16x16 thumbnail (similar pictures, similar vectors);
    texts -> sum of per-word hashed vectors. Counts calls so tests can assert on caching."""

    lowercase_prompts = True
    logit_scale = float(np.log(10.0))
    logit_bias = -5.0

    def __init__(self, embed_dim: int = 24, identity: str = "fake-encoder") -> None:
        self.embed_dim = embed_dim
        self.identity = identity
        rng = np.random.default_rng(0)
        self._projection = rng.standard_normal((16 * 16, embed_dim)).astype(np.float32)
        self.image_calls = 0
        self.text_calls = 0
        self.images_embedded = 0
        self.texts_embedded = 0

    def embed_images(self, images: Sequence[ImageInput], batch_size: int | None = None) -> np.ndarray:
        self.image_calls += 1
        self.images_embedded += len(images)
        if not images:
            return np.zeros((0, self.embed_dim), np.float32)
        flat = np.stack([_as_gray(image).ravel() - 0.5 for image in images])
        return l2_normalize(flat @ self._projection)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.text_calls += 1
        self.texts_embedded += len(texts)
        rows = []
        for text in texts:
            vector = np.zeros(self.embed_dim, np.float32)
            for word in text.lower().replace(".", " ").split():
                seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
                vector += np.random.default_rng(seed).standard_normal(self.embed_dim).astype(np.float32)
            rows.append(vector)
        return l2_normalize(np.stack(rows)) if rows else np.zeros((0, self.embed_dim), np.float32)


class ColourEncoder(FakeEncoder):
    """Images -> the vector chosen for the palette colour nearest their mean colour, so a test decides
    exactly which thumbnails look alike. Records the size of every embed_images call."""

    def __init__(self, palette: dict[tuple[int, int, int], Sequence[float]], identity: str = "rgb") -> None:
        vectors = l2_normalize(np.asarray(list(palette.values()), np.float32))
        super().__init__(embed_dim=vectors.shape[1], identity=identity)
        self._colours = np.asarray(list(palette), np.float32)
        self._vectors = vectors
        self.call_sizes: list[int] = []

    def embed_images(self, images: Sequence[ImageInput], batch_size: int | None = None) -> np.ndarray:
        self.image_calls += 1
        self.images_embedded += len(images)
        self.call_sizes.append(len(images))
        rows = []
        for image in images:
            pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
            mean = np.asarray(pil.convert("RGB"), np.float32).reshape(-1, 3).mean(axis=0)
            rows.append(self._vectors[np.argmin(np.linalg.norm(self._colours - mean, axis=1))])
        return np.stack(rows) if rows else np.zeros((0, self.embed_dim), np.float32)


class FakeDDGS:
    """Stands in for `ddgs.DDGS`: `images()` plays a script of result lists or exceptions, one per call
    (the last entry repeats), and records every call. `factory` is the backend's client_factory."""

    def __init__(self, script: Sequence[object]) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, dict]] = []
        self.timeouts: list[float] = []

    def factory(self, timeout: float) -> FakeDDGS:
        self.timeouts.append(timeout)
        return self

    def images(self, query: str, **kwargs: object) -> list[dict]:
        self.calls.append((query, kwargs))
        step = self.script[min(len(self.calls), len(self.script)) - 1]
        if isinstance(step, BaseException):
            raise step
        return list(step)
