"""`python -m outlyne` as the tests run it: a subprocess from the repository root, with the environment of
a tiny-checkpoint install that never searches the web."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def tiny_env(checkpoint: Path, cache: Path) -> dict[str, str]:
    return {
        **os.environ,
        "OUTLYNE_MODEL": str(checkpoint),
        "OUTLYNE_CACHE_DIR": str(cache),
        "OUTLYNE_PRECISION": "fp32",
        "OUTLYNE_SEARCH": "none",
        "OUTLYNE_THREADS": "1",
    }


def run_outlyne(args: list[str], env: dict[str, str], *, timeout: float = 600) -> subprocess.CompletedProcess:
    """One command to its end, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "outlyne", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
