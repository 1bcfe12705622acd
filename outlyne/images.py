"""The one image intake: every image that comes from outside (CLI path, API upload, page upload, the
editor's layers, gallery files, downloaded thumbnails) is opened here, by `open_image`.

In order, before a pixel is decoded:
  1. bytes: a file or buffer of at most `limits.max_bytes` (a file is never read past that);
  2. format: Pillow may only try the formats we name (`Image.open(formats=...)`: PNG, JPEG, WebP, GIF's
     first frame, BMP), so an EPS or PDF renamed .png never reaches Ghostscript; the format Pillow
     detected is checked again;
  3. declared pixels: width x height from the header, at most `limits.max_pixels`.
Then it decodes reduced, so what is kept is at most `limits.max_side` on its long side: JPEG through
`draft` (libjpeg scales by 1/2..1/8 while decoding, so a 48 MP photo never exists at full size), every
format through `reduce` right after decoding. PNG, WebP, GIF and BMP cannot decode reduced and need
width x height x (up to) 4 bytes for a moment; those large decodes take turns (LARGE_DECODE_SLOTS), so
whatever arrives at once the process holds at most LARGE_DECODE_SLOTS x max_pixels x 4 bytes for them.
EXIF orientation is applied. Every failure is a BadImage: one plain sentence that never names a path.
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from outlyne.errors import BadImage
from outlyne.memory import release_freed_memory

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
# MPO is how Pillow names a phone's JPEG that carries extra frames (depth map, preview); its first
# frame is an ordinary JPEG, opened by the JPEG plugin.
_DETECTED_FORMATS = {*IMAGE_FORMATS, "MPO"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
FORMATS_IN_WORDS = "a PNG, JPEG, WebP, GIF or BMP image"

# The defaults of Config.max_image_bytes / Config.max_image_pixels (OUTLYNE_MAX_IMAGE_BYTES / _PIXELS).
MAX_IMAGE_BYTES = 20_000_000  # a large phone photo fits; also Gradio's upload limit (max_file_size)
MAX_IMAGE_PIXELS = 50_000_000  # an 8000 x 6000 photo fits; 9400 x 9400 or 13000 x 13000 does not
MAX_KEPT_SIDE = 2048  # the sketch normalizer works at 1024 px, the model at 224: nothing needs more

# Decodes that cannot be reduced and exceed this many pixels take turns (see the module docstring).
LARGE_DECODE_PIXELS = 4_000_000
# open_image records here, in the returned image's `info`, the (width, height) the file declared (after
# EXIF orientation), so callers can report coordinates in the original's pixels.
ORIGINAL_SIZE = "outlyne_original_size"
LARGE_DECODE_SLOTS = 1
_large_decodes = threading.BoundedSemaphore(LARGE_DECODE_SLOTS)


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = MAX_IMAGE_BYTES
    max_pixels: int = MAX_IMAGE_PIXELS
    max_side: int = MAX_KEPT_SIDE

    def __post_init__(self) -> None:
        if min(self.max_bytes, self.max_pixels, self.max_side) < 1:
            raise ValueError("image limits must be positive")


DEFAULT_LIMITS = ImageLimits()


def describe_bytes(count: int) -> str:
    return f"{count / 1_000_000:g} MB"


def describe_pixels(count: int) -> str:
    return f"{count / 1_000_000:g} megapixels"


def check_pixel_count(width: int, height: int, limits: ImageLimits, name: str = "The image") -> None:
    """Refuse a size before anything that large exists (also used for arrays and the editor's layers)."""
    if width < 1 or height < 1:
        raise BadImage(f"{name} has no pixels.")
    if width * height > limits.max_pixels:
        raise BadImage(
            f"{name} is too large ({width}x{height} pixels); the limit is "
            f"{describe_pixels(limits.max_pixels)}."
        )


def read_bounded(source: str | Path | bytes | bytearray, limits: ImageLimits, name: str) -> bytes:
    """The bytes of a file or buffer, or BadImage when there are more than `limits.max_bytes`."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        try:
            with open(source, "rb") as handle:
                data = handle.read(limits.max_bytes + 1)  # one byte past the limit tells "too large"
        except FileNotFoundError:
            raise BadImage(f"{name} does not exist.") from None
        except IsADirectoryError:
            raise BadImage(f"{name} is a folder, not an image.") from None
        except OSError:
            raise BadImage(f"{name} cannot be read.") from None
    if len(data) > limits.max_bytes:
        raise BadImage(f"{name} is larger than {describe_bytes(limits.max_bytes)}, the limit for an image.")
    if not data:
        raise BadImage(f"{name} is empty.")
    return data


def open_image(
    source: str | Path | bytes | bytearray,
    limits: ImageLimits = DEFAULT_LIMITS,
    *,
    name: str = "The image",
    size: tuple[int, int] | None = None,
) -> Image.Image:
    """Bytes or a file path -> a decoded PIL image (mode as stored: L, RGB, RGBA, P...), EXIF orientation
    applied, at most `limits.max_side` on its long side, or exactly `size` when given (editor layers that
    must line up with each other).

    `name` is how messages refer to the image ("The upload", "The image cat.png"): never a server path.
    """
    data = read_bounded(source, limits, name)
    image: Image.Image | None = None
    large = False
    try:
        with _open_lazily(data) as image:
            if image.format not in _DETECTED_FORMATS:
                raise UnidentifiedImageError(image.format)
            check_pixel_count(image.width, image.height, limits, name)
            large = image.width * image.height > LARGE_DECODE_PIXELS
            return _decode_reduced(image, limits.max_side, size)
    except BadImage:
        raise
    except MemoryError:
        raise BadImage(f"{name} is too large to decode on this server right now.") from None
    except Exception as error:
        raise _pillow_failure(error, limits, name) from None
    finally:
        if large:
            # Closing does not free the full-size buffer; dropping the last reference does. Then give
            # the freed pages back to the system (see outlyne/memory.py).
            image = None
            release_freed_memory()


def probe_size(source: str | Path | bytes | bytearray, limits: ImageLimits, *, name: str) -> tuple[int, int]:
    """Width and height as the header declares them (nothing decoded), after the byte and format checks."""
    data = read_bounded(source, limits, name)
    try:
        with _open_lazily(data) as image:
            return image.size
    except Exception as error:
        raise _pillow_failure(error, limits, name) from None


def _open_lazily(data: bytes) -> Image.Image:
    """Pillow's open (the header only), trying only IMAGE_FORMATS."""
    with warnings.catch_warnings():
        # Our own, lower limit is checked after this; Pillow's warning in between would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)


def _pillow_failure(error: Exception, limits: ImageLimits, name: str) -> BadImage:
    """What Pillow raised, as one sentence: its own messages can name server paths."""
    if isinstance(error, Image.DecompressionBombError):
        return BadImage(f"{name} is too large; the limit is {describe_pixels(limits.max_pixels)}.")
    if isinstance(error, UnidentifiedImageError):
        return BadImage(f"{name} is not {FORMATS_IN_WORDS}.")
    # Truncated or corrupt data makes Pillow's decoders raise OSError, SyntaxError, ValueError,
    # struct.error, EOFError...
    return BadImage(f"{name} is truncated or corrupt.")


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _decode_reduced(image: Image.Image, max_side: int, size: tuple[int, int] | None) -> Image.Image:
    width, height = image.size  # as declared: draft() below changes image.size
    target = size or _fit(image.size, max_side)
    if image.format in ("JPEG", "MPO"):
        image.draft(image.mode, target)  # libjpeg decodes at the smallest scale still >= target
    large = image.width * image.height > LARGE_DECODE_PIXELS  # after draft: what load() allocates
    if large:
        _large_decodes.acquire()
    try:
        image.load()  # GIF and animated WebP: the first frame
        factor = min(image.width // target[0], image.height // target[1])
        decoded = image.reduce(factor) if factor >= 2 else image.copy()
    finally:
        if large:
            _large_decodes.release()
    if decoded.mode not in ("1", "L", "LA", "P", "PA", "RGB", "RGBA"):  # CMYK JPEG, 16-bit PNG, ...
        decoded = decoded.convert("RGBA" if "A" in decoded.getbands() else "RGB")
    oriented = ImageOps.exif_transpose(decoded)  # phones store photos sideways plus an EXIF rotation
    turned = oriented.size != decoded.size
    declared = (height, width) if turned else (width, height)
    wanted = size or _fit(oriented.size, max_side)  # reduce() only divides by whole factors
    if oriented.size != wanted:
        oriented = oriented.resize(wanted, Image.Resampling.BILINEAR)
    oriented.info[ORIGINAL_SIZE] = declared
    return oriented


def flatten_to_rgb(image: Image.Image) -> Image.Image:
    """RGB with transparency composited onto white, as the HF processor's convert_to_rgb does: a sketch
    drawn on a transparent layer (or transparent line art from the web) must stay dark ink on white, not
    black on black."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")
