"""Progress of long work (export, concept embeddings, indexing): one callable type, one reporter."""

from __future__ import annotations

import sys
from collections.abc import Callable

Progress = Callable[[str], None]
"""Takes one human-readable line, e.g. "embedded 64/438 concepts"."""


def progress_to_stderr(message: str) -> None:
    """Progress goes to stderr so that stdout stays clean for `--json` output."""
    print(f"outlyne: {message}", file=sys.stderr, flush=True)


def silent(message: str) -> None:
    """A Progress that shows nothing."""
