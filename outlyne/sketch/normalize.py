"""Sketch normalization: whatever a person drew or uploaded -> dark ink on white, cropped to the drawing.

Pure OpenCV/numpy/PIL (no model imports), so it is cheap to test and to call on every Sketchpad change.

    load_rgb   (outlyne.sketch.load) any accepted input -> HxWx3 uint8 RGB, transparency flattened onto white
    normalize  grayscale -> polarity -> denoise -> contrast -> crop -> square model and display images

Each step of `normalize` can be switched off through `NormalizeOptions` (the evaluation measures each
step's effect that way); with every step off the result is still a valid square image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from outlyne.errors import EmptySketch
from outlyne.images import DEFAULT_LIMITS, ImageLimits
from outlyne.sketch.load import load, load_rgb  # noqa: F401 - load_rgb: part of this module's API

# A pixel is ink when it is at least this far (out of 255) from the background level: above JPEG and scan
# noise (a few levels), below the faintest pencil or coloured pen once the colour-aware grayscale is used.
INK_CONTRAST = 32

# Contrast stretch: pixels within this distance of the background become pure background (paper grain,
# JPEG ringing), and the strongest ink (this percentile of the ink pixels' strength) becomes pure black.
BACKGROUND_TOLERANCE = 8
INK_LEVEL_PERCENTILE = 95

# Speckle: ink components smaller than this fraction of the image (with a floor in pixels) are noise.
# At 1024x1024 that is 10 px, at the Sketchpad's 800x600 5 px, while a 1 px line of 12 px length survives.
SPECKLE_FRACTION = 1e-5
SPECKLE_MIN_AREA = 5


@dataclass(frozen=True)
class NormalizeOptions:
    polarity: bool = True  # make ink dark on a light background, whichever way it was drawn
    denoise: bool = True  # remove speckle without losing 1-2 px strokes
    contrast: bool = True  # stretch contrast: background to white, strongest ink to black
    crop: bool = True  # crop to the ink's bounding box + margin, pad to a square with background
    margin: float = 0.1  # fraction of the box's longer side added on each side
    max_side: int = 1024  # larger inputs are downscaled first (bounded time/memory)
    model_side: int = 224  # the encoder's input size: its own resize is then a no-op
    display_side: int = 384

    def __post_init__(self) -> None:
        if not 0 <= self.margin <= 2:
            raise ValueError(f"margin must be in [0, 2], not {self.margin}")
        for name in ("max_side", "model_side", "display_side"):
            if getattr(self, name) < 8:
                raise ValueError(f"{name} must be at least 8, not {getattr(self, name)}")


@dataclass(frozen=True)
class NormalizedSketch:
    model_image: np.ndarray  # model_side x model_side x 3 uint8 RGB, dark ink on white: what the encoder gets
    display_image: np.ndarray  # same content at display_side, for the UI
    bbox: tuple[int, int, int, int] | None  # ink box (x0, y0, x1, y1), exclusive end, input pixel coordinates
    inverted: bool  # polarity was flipped


# ----------------------------------------------------------------------------------------- normalizing


def normalize(
    value: object, options: NormalizeOptions = NormalizeOptions(), limits: ImageLimits = DEFAULT_LIMITS
) -> NormalizedSketch:
    """Normalize a sketch for the encoder; raises EmptySketch when there is no ink, BadImage on bad input
    (including anything past `limits`: see outlyne.sketch.load)."""
    loaded = load(value, limits)
    rgb = loaded.rgb
    input_width, input_height = loaded.original_size  # the bbox is reported in the input's own pixels
    gray = _ink_gray(rgb)
    del rgb
    background = _border_level(gray)
    inverted = options.polarity and _ink_is_lighter(gray, background)
    if inverted:
        gray = cv2.bitwise_not(gray)
        background = _border_level(gray)
    ink_dark = not _ink_is_lighter(gray, background)

    gray = _shrink(gray, options.max_side, ink_dark)
    strength = _ink_strength(gray, background, ink_dark)
    ink = strength > INK_CONTRAST
    if options.denoise:
        gray, strength, ink = _remove_speckle(gray, strength, ink, background)
    box = _bounding_box(ink)
    if box is None:
        raise EmptySketch()

    fill = background
    if options.contrast:
        gray = _stretch(strength, ink, ink_dark)
        fill = 255 if ink_dark else 0
    square = _crop_square(gray, box, options.margin, fill) if options.crop else _pad_square(gray, fill)
    return NormalizedSketch(
        model_image=_to_rgb(_resize(square, options.model_side, ink_dark)),
        display_image=_to_rgb(_resize(square, options.display_side, ink_dark)),
        bbox=_to_input_coordinates(box, gray.shape, (input_height, input_width)),
        inverted=bool(inverted),
    )


def _ink_gray(rgb: np.ndarray) -> np.ndarray:
    """Grayscale that keeps coloured strokes visible: the darkest channel on a light background, the
    brightest on a dark one. Luminance would turn yellow ink on white into 226/255, barely ink at all."""
    light_background = _border_level(cv2.cvtColor(_border_pixels(rgb), cv2.COLOR_RGB2GRAY)) >= 128
    reduce = np.minimum if light_background else np.maximum
    return reduce(reduce(rgb[:, :, 0], rgb[:, :, 1]), rgb[:, :, 2])


def _border_pixels(image: np.ndarray) -> np.ndarray:
    """The outermost rows and columns (a band ~2% of the short side), as a 1xN image.

    The background is read there, not from the global mean: a big dark blob drawn on white must not
    make the canvas look dark."""
    band = max(1, min(image.shape[:2]) // 50)
    parts = [image[:band], image[-band:], image[:, :band].swapaxes(0, 1), image[:, -band:].swapaxes(0, 1)]
    return np.concatenate([p.reshape(1, -1, *image.shape[2:]) for p in parts], axis=1)


def _border_level(gray: np.ndarray) -> int:
    """Median intensity of the border: the background, unless the drawing covers most of the edge."""
    return int(np.median(_border_pixels(gray)))


def _ink_is_lighter(gray: np.ndarray, background: int) -> bool:
    """Is the ink lighter than the background? Compares how much clearly-off-background tone lies on each
    side of it (a histogram, so it is cheap even at 48 MP). Decides polarity relative to the background,
    so black ink on mid-gray paper is not flipped just because the paper is darker than 128."""
    histogram = cv2.calcHist([gray], [0], None, [256], [0, 256]).ravel().astype(np.float64)
    levels = np.arange(256)
    darker = levels < background - INK_CONTRAST
    lighter = levels > background + INK_CONTRAST
    dark_weight = float(histogram[darker] @ (background - levels[darker]))
    light_weight = float(histogram[lighter] @ (levels[lighter] - background))
    return light_weight > dark_weight


def _ink_strength(gray: np.ndarray, background: int, ink_dark: bool) -> np.ndarray:
    """0 = background, 255 = as far from it as possible, in the ink's direction only."""
    level = np.full_like(gray, background)
    return cv2.subtract(level, gray) if ink_dark else cv2.subtract(gray, level)


def _remove_speckle(
    gray: np.ndarray, strength: np.ndarray, ink: np.ndarray, background: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop ink components smaller than a speckle (and their faint antialiased rim).

    Connected components rather than a median or NL-means filter: those erase or smear a 1 px line, while
    a component test only looks at size, so a long thin stroke survives whole and an isolated dot goes."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink.view(np.uint8), connectivity=8)
    min_area = max(SPECKLE_MIN_AREA, SPECKLE_FRACTION * ink.size)
    small = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] < min_area) + 1
    if small.size == 0:
        return gray, strength, ink
    speckle = np.zeros(count, bool)
    speckle[small] = True
    speckle = speckle[labels]
    kept = ink & ~speckle
    rim = cv2.dilate(speckle.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool) & ~kept
    gray, strength = gray.copy(), strength.copy()
    gray[rim] = background
    strength[rim] = 0
    return gray, strength, kept


def _bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _stretch(strength: np.ndarray, ink: np.ndarray, ink_dark: bool) -> np.ndarray:
    """Background (within BACKGROUND_TOLERANCE) -> pure white, the strongest ink -> pure black.

    Works on ink strength, so it is the same for either polarity; the ink level is a high percentile of
    the ink pixels rather than the maximum, so a few outliers do not decide it."""
    ink_level = float(np.percentile(strength[ink], INK_LEVEL_PERCENTILE))
    scale = 255.0 / max(ink_level - BACKGROUND_TOLERANCE, 1.0)
    lut = np.clip((np.arange(256) - BACKGROUND_TOLERANCE) * scale, 0, 255).round().astype(np.uint8)
    stretched = cv2.LUT(strength, lut)
    return cv2.bitwise_not(stretched) if ink_dark else stretched


def _crop_square(gray: np.ndarray, box: tuple[int, int, int, int], margin: float, fill: int) -> np.ndarray:
    """The ink's box plus margin, centred in a square; parts outside the image are background."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    pad = round(margin * side)
    size = side + 2 * pad
    left = x0 - pad - (side - (x1 - x0)) // 2
    top = y0 - pad - (side - (y1 - y0)) // 2
    return _paste(gray, left, top, size, fill)


def _pad_square(gray: np.ndarray, fill: int) -> np.ndarray:
    height, width = gray.shape
    size = max(height, width)
    return _paste(gray, (width - size) // 2, (height - size) // 2, size, fill)


def _paste(gray: np.ndarray, left: int, top: int, size: int, fill: int) -> np.ndarray:
    """The size x size window of `gray` whose top-left corner is (left, top), background outside."""
    square = np.full((size, size), fill, np.uint8)
    src_x0, src_y0 = max(left, 0), max(top, 0)
    src_x1, src_y1 = min(left + size, gray.shape[1]), min(top + size, gray.shape[0])
    if src_x1 > src_x0 and src_y1 > src_y0:
        window = gray[src_y0:src_y1, src_x0:src_x1]
        square[src_y0 - top : src_y1 - top, src_x0 - left : src_x1 - left] = window
    return square


def _shrink(gray: np.ndarray, max_side: int, ink_dark: bool) -> np.ndarray:
    """Downscale so the longer side is at most max_side, keeping thin strokes visible.

    Plain area averaging turns a 1 px line at 4x reduction into a 25% grey smear; spreading the ink over
    the reduction factor first (a min filter for dark ink, max for light) keeps it a solid ~1 px line."""
    height, width = gray.shape
    factor = max(height, width) / max_side
    if factor <= 1:
        return gray
    kernel = math.ceil(factor)  # the widest input footprint of one output pixel
    if kernel >= 2:
        op = cv2.erode if ink_dark else cv2.dilate
        gray = op(gray, np.ones((kernel, kernel), np.uint8), borderType=cv2.BORDER_REPLICATE)
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def _resize(square: np.ndarray, side: int, ink_dark: bool) -> np.ndarray:
    if square.shape[0] > side:
        return _shrink(square, side, ink_dark)
    if square.shape[0] < side:
        return cv2.resize(square, (side, side), interpolation=cv2.INTER_LINEAR)
    return square


def _to_rgb(gray: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)


def _to_input_coordinates(
    box: tuple[int, int, int, int], working: tuple[int, ...], original: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Map a box found on the (possibly downscaled) working image back to input pixels, rounding outward."""
    sx, sy = original[1] / working[1], original[0] / working[0]
    x0, y0, x1, y1 = box
    return (
        max(0, math.floor(x0 * sx)),
        max(0, math.floor(y0 * sy)),
        min(original[1], math.ceil(x1 * sx)),
        min(original[0], math.ceil(y1 * sy)),
    )
