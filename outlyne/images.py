"""The one image intake: every image that comes from outside (CLI path, API upload, page upload, the
editor's layers, gallery files, downloaded thumbnails) is opened here.

What it guarantees, before any pixel is decoded: only the formats we name (PNG, JPEG, WebP, GIF's first
frame, BMP; never a Pillow plugin that shells out, such as EPS), a byte limit and a declared-pixel limit.
Then EXIF orientation is applied, and a large JPEG is decoded at a reduced scale. Every failure is one
plain sentence (BadImage) that never names a server path.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from outlyne.errors import BadImage

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
MAX_IMAGE_BYTES = 25 * 1024 * 1024
MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold


def open_image(
    source: str | Path | bytes | bytearray,
    *,
    name: str = "The image",
    max_bytes: int = MAX_IMAGE_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
    reduce_to: int | None = None,
) -> Image.Image:
    """Bytes or a file path -> a fully decoded PIL image (mode as stored, EXIF orientation applied).

    `name` is how messages refer to the image ("The uploaded file"); a path is never echoed. `reduce_to`
    lets JPEG decode at a reduced scale whose sides stay >= that size (the model needs 224 px).
    """
    data = _read_bounded(source, name, max_bytes)
    try:
        with warnings.catch_warnings():
            # The declared size is checked below before decoding; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
            width, height = image.size
            if width < 1 or height < 1:
                raise BadImage(f"{name} has no pixels.")
            if width * height > max_pixels:
                raise BadImage(
                    f"{name} is too large ({width}x{height} pixels); the limit is "
                    f"{max_pixels // 1_000_000} megapixels."
                )
            if reduce_to:
                image.draft(image.mode if image.mode in ("RGB", "L") else "RGB", (reduce_to, reduce_to))
            image.load()  # decode now: a truncated file fails here, not later inside a batch
            return ImageOps.exif_transpose(image)
    except BadImage:
        raise
    except Image.DecompressionBombError:
        raise BadImage(f"{name} is too large to process.") from None
    except UnidentifiedImageError:
        raise BadImage(f"{name} is not a PNG, JPEG, WebP, GIF or BMP image.") from None
    except Exception:
        # Pillow reports truncated or corrupt data as OSError, SyntaxError, ValueError, struct.error...
        # depending on the format; its messages can name server paths: keep them out.
        raise BadImage(f"{name} is not a readable image: the data is corrupt or truncated.") from None


def _read_bounded(source: str | Path | bytes | bytearray, name: str, max_bytes: int) -> bytes:
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
    else:
        path = Path(source)
        try:
            if not path.is_file():
                raise BadImage(f"{name} is not a file.")
            if path.stat().st_size > max_bytes:
                raise BadImage(f"{name} is larger than {max_bytes // (1024 * 1024)} MB.")
            data = path.read_bytes()
        except OSError:
            raise BadImage(f"{name} cannot be read.") from None
    if len(data) > max_bytes:
        raise BadImage(f"{name} is larger than {max_bytes // (1024 * 1024)} MB.")
    return data


def flatten_to_rgb(image: Image.Image) -> Image.Image:
    """RGB with transparency composited onto white, as the HF processor's convert_to_rgb does: a sketch
    drawn on a transparent layer (or transparent line art from the web) must stay dark ink on white, not
    black on black."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")
