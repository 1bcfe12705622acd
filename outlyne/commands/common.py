"""Small helpers shared by the CLI commands."""

from __future__ import annotations

import sys


def progress_to_stderr(message: str) -> None:
    """Progress for long work (export, concept embeddings) goes to stderr so --json stdout stays clean."""
    print(f"outlyne: {message}", file=sys.stderr, flush=True)
