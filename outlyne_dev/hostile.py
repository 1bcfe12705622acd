"""Hostile inputs, made on the fly: small files that claim or do harmful things."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_declaring(width: int, height: int, rows: int = 64) -> bytes:
    """A valid-looking RGBA PNG whose header declares width x height; only `rows` rows of zeros follow
    (tiny once compressed). A decoder that trusts the header allocates width x height x 4 bytes."""
    row = b"\0" * (1 + width * 4)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def drawing_png(size: tuple[int, int] = (200, 160)) -> bytes:
    """A black rectangle outline on white: enough ink for the pipeline to score."""
    from PIL import ImageDraw

    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).rectangle([30, 30, size[0] - 30, size[1] - 30], outline="black", width=4)
    return encoded(image)


def truncated_png() -> bytes:
    data = drawing_png((300, 300))
    return data[: len(data) // 2]


# What Ghostscript would run: an EPS file. Renamed .png it must be refused before any plugin sees it.
EPS_BYTES = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nnewpath 0 0 moveto 100 100 lineto stroke\n"

TIFF_BYTES = encoded(Image.new("RGB", (10, 10)), "TIFF")


def sideways_jpeg() -> bytes:
    """A 400x100 JPEG whose EXIF says "rotate 90 degrees": shown upright it is 100x400."""
    image = Image.new("RGB", (400, 100), "white")
    exif = image.getexif()
    exif[0x0112] = 6
    return encoded(image, "JPEG", exif=exif.tobytes())
