"""Small file helpers every cache uses: one atomic write, one checksum."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write a file so that a crash or a concurrent reader never sees half of it: `write(handle)` fills a
    temporary file beside `path`, which is flushed to disk and then renamed over `path` (os.replace is
    atomic on one file system). The temporary file never outlives a failure."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks (model weights can be hundreds of MB)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
