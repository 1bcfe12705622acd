"""The sketch loader: whatever a person drew, uploaded or sent -> HxWx3 uint8 RGB, alpha flattened onto
white, never larger than the intake's limits allow.

Every file, bytes value and editor layer is decoded by outlyne.images (byte, format and pixel limits
before decoding, reduced decode, EXIF). Editor values ({"background", "layers", "composite"}) are bounded
here as well, because the editor's events are reachable by anyone through Gradio's queue: at most
MAX_EDITOR_LAYERS layers, each layer's declared size and the canvas they make checked against the pixel
limit before any layer is decoded, and every layer decoded straight at the (reduced) canvas scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from outlyne.errors import BadImage, EmptySketch, shorten
from outlyne.images import (
    DEFAULT_LIMITS,
    ORIGINAL_SIZE,
    ImageLimits,
    check_pixel_count,
    open_image,
    probe_size,
)

# The page's editor has one drawing layer (layers=False); Gradio's editor can add a few more.
MAX_EDITOR_LAYERS = 4
EDITOR_KEYS = frozenset({"background", "layers", "composite"})

_FLATTEN_ROWS = 1024  # rows per chunk when flattening alpha: bounds the int32 temporaries on huge images


@dataclass(frozen=True)
class LoadedImage:
    rgb: np.ndarray  # HxWx3 uint8, alpha flattened onto white; files at most limits.max_side per side
    original_size: tuple[int, int]  # (width, height) of the input before any reduction


def load_rgb(value: object, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """`load` without the original size."""
    return load(value, limits).rgb


def load(value: object, limits: ImageLimits = DEFAULT_LIMITS) -> LoadedImage:
    """Any accepted input -> RGB with transparency flattened onto white. Files and editor values are
    decoded reduced to at most `limits.max_side` on their long side; arrays and PIL images (already in
    memory) keep their size, after the same pixel limit.

    Accepts a Gradio Sketchpad/ImageEditor dict {"background", "layers", "composite"} (each a file path,
    bytes, array or PIL image), a numpy array (HxW, HxWx1..4; uint8, bool, float in [0, 1], uint16, other
    integers clipped to 0..255), a PIL image (any mode), a file path (str/Path), encoded image bytes, or a
    Gradio file dict {"path": ...}.
    """
    if value is None:
        raise EmptySketch()
    if isinstance(value, Mapping):
        if "path" in value and not (EDITOR_KEYS & value.keys()):
            return load(value["path"], limits)
        return _load_editor_value(value, limits)
    pixels, original_size = _decode(value, limits, _name_of(value))
    return LoadedImage(_flatten(pixels), original_size)


def _name_of(value: object, default: str = "The image") -> str:
    if isinstance(value, str | Path):
        return f"The image {shorten(Path(value).name, 60)}"
    return default


def _load_editor_value(value: Mapping, limits: ImageLimits) -> LoadedImage:
    """Composite of a Sketchpad/ImageEditor value; `composite` is None from some API callers, and then
    the background and layers are composited here."""
    if value.get("composite") is not None:
        pixels, original_size = _decode(value["composite"], limits, "The drawing")
        return LoadedImage(_flatten(pixels), original_size)
    layers = [layer for layer in value.get("layers") or [] if layer is not None]
    if len(layers) > MAX_EDITOR_LAYERS:
        raise BadImage(f"The drawing has {len(layers)} layers; at most {MAX_EDITOR_LAYERS} are accepted.")
    background = value.get("background")
    parts = [("The drawing's background", background)] if background is not None else []
    parts += [(f"Layer {number} of the drawing", layer) for number, layer in enumerate(layers, 1)]
    if not parts:
        raise EmptySketch()
    # Sizes first, from headers only: nothing is decoded until every part and the canvas are known to fit.
    sizes = [_declared_size(part, limits, name) for name, part in parts]
    for (name, _), (width, height) in zip(parts, sizes, strict=True):
        check_pixel_count(width, height, limits, name)
    # The background fixes the canvas size; without one, the layers' extent does.
    width, height = sizes[0] if background is not None else tuple(map(max, zip(*sizes, strict=True)))
    check_pixel_count(width, height, limits, "The drawing")
    scale = min(1.0, limits.max_side / max(width, height))
    canvas = np.full((max(1, round(height * scale)), max(1, round(width * scale)), 3), 255, np.uint8)
    for (name, part), (part_width, part_height) in zip(parts, sizes, strict=True):
        scaled = (max(1, round(part_width * scale)), max(1, round(part_height * scale)))
        _over(canvas, _decode(part, limits, name, size=scaled)[0])
    return LoadedImage(canvas, (width, height))


def _declared_size(value: object, limits: ImageLimits, name: str) -> tuple[int, int]:
    if isinstance(value, np.ndarray):
        return (value.shape[1], value.shape[0]) if value.ndim >= 2 else (0, 0)
    if isinstance(value, Image.Image):
        return value.size
    if isinstance(value, str | Path | bytes | bytearray):
        return probe_size(value, limits, name=name)
    raise BadImage(f"{name} is not an image (got {type(value).__name__}).")


def _decode(
    value: object, limits: ImageLimits, name: str, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """-> (HxWx3 RGB or HxWx4 RGBA uint8, alpha not yet applied; the input's own (width, height)).
    Resized to `size` when given; files are decoded reduced, in-memory images keep their size."""
    if isinstance(value, str | Path | bytes | bytearray):
        image = open_image(value, limits, name=name, size=size)
        return _from_pil(image), image.info[ORIGINAL_SIZE]
    if isinstance(value, np.ndarray):
        pixels = _from_array(value, limits, name)
    elif isinstance(value, Image.Image):
        check_pixel_count(value.width, value.height, limits, name)
        pixels = _from_pil(value)
    else:
        kind = type(value).__name__
        raise BadImage(f"Expected an image (array, PIL image, file path or Sketchpad value), got {kind}.")
    original_size = (pixels.shape[1], pixels.shape[0])
    if size is not None and original_size != size:
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return pixels, original_size


def _from_pil(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I;16"):
        return _from_array(np.asarray(image).astype(np.uint16))
    if mode == "I":  # 32-bit integer pixels hold 16-bit data in practice (16-bit PNG/TIFF)
        return _from_array(np.clip(np.asarray(image), 0, 65535).astype(np.uint16))
    if mode == "F":  # PIL's float mode uses the 0..255 range, not 0..1
        return _from_array(np.clip(np.asarray(image), 0, 255).astype(np.uint8))
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info
    try:
        return np.asarray(image.convert("RGBA" if has_alpha else "RGB"))
    except (ValueError, OSError):
        raise BadImage(f"The image's colour mode ({shorten(mode, 12)}) cannot be read.") from None


def _from_array(
    array: np.ndarray, limits: ImageLimits = DEFAULT_LIMITS, name: str = "The image"
) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise BadImage(f"Expected an HxW or HxWxC (C = 1..4) image array, got shape {array.shape}.")
    check_pixel_count(array.shape[1], array.shape[0], limits, name)
    array = _to_uint8(array)
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.shape[2] == 2:  # gray + alpha
        return np.concatenate([np.repeat(array[:, :, :1], 3, axis=2), array[:, :, 1:]], axis=2)
    return np.ascontiguousarray(array)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    kind = array.dtype.kind
    if array.dtype == np.uint8:
        return array
    if kind == "b":
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if kind in "iu":
        return np.clip(array, 0, 255).astype(np.uint8)
    if kind == "f":
        # Floats are intensities in [0, 1] (the scikit-image convention); NaN counts as black.
        unit = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return (np.clip(unit, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    raise BadImage(f"Unsupported pixel type {array.dtype} (expected integers, floats or booleans).")


def _flatten(pixels: np.ndarray) -> np.ndarray:
    if pixels.shape[2] == 3:
        return pixels
    canvas = np.full((*pixels.shape[:2], 3), 255, np.uint8)
    _over(canvas, pixels)
    return canvas


def _over(canvas: np.ndarray, layer: np.ndarray) -> None:
    """Alpha-composite an RGB(A) layer onto the opaque RGB canvas in place, anchored top-left.

    Integer maths in row chunks: a large RGBA image must not turn into gigabytes of float temporaries.
    Colours under fully transparent pixels are arbitrary (Gradio zeroes them), so alpha is always honoured.
    """
    height = min(canvas.shape[0], layer.shape[0])
    width = min(canvas.shape[1], layer.shape[1])
    if layer.shape[2] == 3:
        canvas[:height, :width] = layer[:height, :width]
        return
    for top in range(0, height, _FLATTEN_ROWS):
        rows = slice(top, min(top + _FLATTEN_ROWS, height))
        alpha = layer[rows, :width, 3:4].astype(np.int32)
        color = layer[rows, :width, :3].astype(np.int32)
        under = canvas[rows, :width].astype(np.int32)
        canvas[rows, :width] = ((color * alpha + under * (255 - alpha) + 127) // 255).astype(np.uint8)
