"""Giving memory that was freed back to the system, after work that needed a lot of it for a moment.

glibc's malloc keeps what Pillow and NumPy free in its heaps (one arena per thread that allocated, and
Gradio runs handlers on many threads) instead of returning it: after a large image is decoded and
dropped, the serving process stayed a third larger than before, for good. `malloc_trim(0)` hands the
free pages of every arena back. Without glibc (musl, macOS) there is nothing to call and nothing happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Return the heaps' free pages to the system (a few milliseconds; call after large, rare work)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
