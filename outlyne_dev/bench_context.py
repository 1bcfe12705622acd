"""What every benchmark section receives: the checkpoint, the config and shared measurements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from outlyne.config import Config
from outlyne.progress import Progress, silent


@dataclass
class BenchContext:
    checkpoint: Path  # a local SigLIP checkpoint folder
    config: Config  # model=checkpoint; cache_dir and threads as configured
    runs: int = 50
    progress: Progress = silent
    image_path: Path | None = None  # one sketch-like PNG, written by the latency section
    runners: dict[str, Callable[[list], np.ndarray]] = field(default_factory=dict)
    extras: dict[str, object] = field(default_factory=dict)


Section = Callable[[BenchContext, dict], dict]
