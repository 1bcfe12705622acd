"""Image -> pixel tensor, in numpy/PIL, matching the checkpoint's own SigLIP image processor.

The HF image processor is slow per call and drags in transformers; this replays exactly its steps (convert to
RGB compositing transparency onto white, resize with the checkpoint's filter, rescale, normalize) from a
small spec saved next to the exported IR. tests/test_preprocess.py proves parity with the HF processor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from outlyne.errors import BadImage
from outlyne.images import flatten_to_rgb, open_image
from outlyne.model.embedder import ImageInput

# Refuse absurd inputs before decoding them (a decompression bomb would otherwise eat the RAM).


@dataclass(frozen=True)
class PreprocessSpec:
    height: int
    width: int
    resample: int  # a PIL.Image.Resampling value, as stored in the checkpoint's processor config
    rescale_factor: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    do_resize: bool = True
    do_rescale: bool = True
    do_normalize: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessSpec:
        return cls(
            height=int(data["height"]),
            width=int(data["width"]),
            resample=int(data["resample"]),
            rescale_factor=float(data["rescale_factor"]),
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            do_resize=bool(data.get("do_resize", True)),
            do_rescale=bool(data.get("do_rescale", True)),
            do_normalize=bool(data.get("do_normalize", True)),
        )

    @classmethod
    def from_processor_config(cls, config: dict) -> PreprocessSpec:
        """From the keys of an HF SigLIP image processor config (defaults are SiglipImageProcessor's)."""
        size = config.get("size") or {"height": 224, "width": 224}
        if "height" not in size:  # {"shortest_edge": n} is not used by SigLIP, but map it to a square
            edge = size.get("shortest_edge", 224)
            size = {"height": edge, "width": edge}

        def triple(value: object, default: float) -> tuple[float, float, float]:
            if value is None:
                value = default
            values = [float(v) for v in value] if isinstance(value, list | tuple) else [float(value)] * 3
            return (values[0], values[1], values[2])

        return cls(
            height=int(size["height"]),
            width=int(size["width"]),
            resample=int(config.get("resample", Image.Resampling.BICUBIC)),
            rescale_factor=float(config.get("rescale_factor", 1 / 255)),
            mean=triple(config.get("image_mean"), 0.5),
            std=triple(config.get("image_std"), 0.5),
            do_resize=bool(config.get("do_resize", True)),
            do_rescale=bool(config.get("do_rescale", True)),
            do_normalize=bool(config.get("do_normalize", True)),
        )

    @classmethod
    def from_checkpoint(cls, folder: Path) -> PreprocessSpec:
        """Hub checkpoints keep it in preprocessor_config.json; processors saved by transformers 5 nest it
        under "image_processor" in processor_config.json. Either works."""
        folder = Path(folder)
        legacy = folder / "preprocessor_config.json"
        if legacy.is_file():
            return cls.from_processor_config(json.loads(legacy.read_text()))
        combined = folder / "processor_config.json"
        if combined.is_file():
            data = json.loads(combined.read_text())
            return cls.from_processor_config(data.get("image_processor", data))
        raise FileNotFoundError(f"no preprocessor_config.json or processor_config.json in {folder}")


def load_image(path: str | Path) -> Image.Image:
    """Open and fully decode an image file through the one intake (outlyne.images)."""
    return open_image(path, name=f"The image {Path(path).name}")


def to_rgb(image: ImageInput) -> np.ndarray:
    """HxWx3 uint8 RGB, transparency composited onto white (see flatten_to_rgb)."""
    if isinstance(image, Image.Image):
        return np.asarray(flatten_to_rgb(image))
    array = np.asarray(image)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        # Float images are taken to be in [0, 1], the usual convention for float pixels.
        array = np.round(np.clip(array, 0.0, 1.0) * 255)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        raise BadImage(f"an image array must be HxW, HxWx1, HxWx3 or HxWx4, not shape {array.shape}.")
    array = np.clip(array, 0, 255).astype(np.uint8, copy=False)
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.shape[2] == 4:
        alpha = array[:, :, 3:4] / 255
        return np.round(alpha * array[:, :, :3] + (1 - alpha) * 255).astype(np.uint8)
    return array


def resized_rgb(image: ImageInput, spec: PreprocessSpec) -> np.ndarray:
    """One image -> HxWx3 uint8 RGB at the model's size: the part of preprocessing done before any float
    math (the remote encoder sends this; see outlyne.model.wire)."""
    rgb = to_rgb(image)
    if spec.do_resize and rgb.shape[:2] != (spec.height, spec.width):
        resized = Image.fromarray(rgb).resize((spec.width, spec.height), resample=spec.resample)
        rgb = np.asarray(resized)
    return rgb


def preprocess_one(image: ImageInput, spec: PreprocessSpec) -> np.ndarray:
    """One image -> 3xHxW float32, the model's pixel_values layout."""
    pixels = resized_rgb(image, spec).astype(np.float32)
    if spec.do_rescale:
        pixels *= np.float32(spec.rescale_factor)
    if spec.do_normalize:
        pixels -= np.asarray(spec.mean, np.float32)
        pixels /= np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def preprocess(images: Sequence[ImageInput], spec: PreprocessSpec) -> np.ndarray:
    """A batch -> Nx3xHxW float32."""
    if not images:
        return np.zeros((0, 3, spec.height, spec.width), np.float32)
    return np.stack([preprocess_one(image, spec) for image in images])
