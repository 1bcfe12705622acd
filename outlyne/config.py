"""The one configuration object, read from OUTLYNE_* environment variables in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from outlyne.errors import ConfigError

DEFAULT_MODEL = "google/siglip2-base-patch16-224"
PRECISIONS = ("fp32", "int8", "int8-static")
# int8-static (NNCF post-training quantization, normalization and pooling head kept in float): on the
# 2-core target it was the only precision under the 0.40x-of-PyTorch latency target (about 0.3x, against
# about 0.47x for int8 weight-only), at cosine >= 0.99 to FP32. See README "Speed" for the measurements
# (benchmarks/bench-vision.json). OUTLYNE_PRECISION=int8 trades that speed for near-exact embeddings.
DEFAULT_PRECISION = "int8-static"
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Config:
    model: str = DEFAULT_MODEL
    precision: str = DEFAULT_PRECISION
    cache_dir: Path = Path.home() / ".cache" / "outlyne"
    concepts_path: Path = REPO_ROOT / "concepts.json"
    search: str = "ddg"  # "ddg" | "local:/some/folder" | "none"
    threads: int | None = None  # None: let OpenVINO decide (it sizes from the host, not the container)
    batch_size: int = 16
    top_k: int = 5
    # Share links (outlyne/web/share_store.py): a cap per share, a cap on the folder (oldest shares are
    # evicted first) and how long a link lives. A typical share is 5-30 KB.
    share_max_bytes: int = 256 * 1024
    share_total_bytes: int = 64 * 1024 * 1024
    share_max_age_days: float = 30.0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"OUTLYNE_PRECISION={self.precision!r} is not one of {', '.join(PRECISIONS)}.")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"OUTLYNE_THREADS must be a positive integer, not {self.threads}.")
        if not (self.search in ("ddg", "none") or self.search.startswith("local:")):
            raise ConfigError(
                f"OUTLYNE_SEARCH={self.search!r} is not 'ddg', 'none' or 'local:/path/to/folder'."
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        threads = env.get("OUTLYNE_THREADS", "").strip()
        try:
            threads_value = int(threads) if threads else None
        except ValueError:
            raise ConfigError(f"OUTLYNE_THREADS must be a positive integer, not {threads!r}.") from None
        defaults = cls()
        return cls(
            model=env.get("OUTLYNE_MODEL", "").strip() or DEFAULT_MODEL,
            precision=env.get("OUTLYNE_PRECISION", "").strip().lower() or DEFAULT_PRECISION,
            cache_dir=Path(env["OUTLYNE_CACHE_DIR"]).expanduser()
            if env.get("OUTLYNE_CACHE_DIR")
            else defaults.cache_dir,
            concepts_path=Path(env["OUTLYNE_CONCEPTS"]).expanduser()
            if env.get("OUTLYNE_CONCEPTS")
            else defaults.concepts_path,
            search=env.get("OUTLYNE_SEARCH", "").strip() or "ddg",
            threads=threads_value,
        )

    def with_options(self, **changes: object) -> Config:
        """A copy with some fields changed (the config itself is never mutated)."""
        return replace(self, **changes)

    @property
    def local_search_folder(self) -> Path | None:
        return Path(self.search[len("local:") :]).expanduser() if self.search.startswith("local:") else None
