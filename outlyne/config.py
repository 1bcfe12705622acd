"""The one configuration object, read from OUTLYNE_* environment variables in one place."""

from __future__ import annotations

import os
import re
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
    encoder: str | None = None  # OUTLYNE_ENCODER: None = in-process; kserve-v2://HOST:PORT[/NAME] = remote

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"OUTLYNE_PRECISION={self.precision!r} is not one of {', '.join(PRECISIONS)}.")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"OUTLYNE_THREADS must be a positive integer, not {self.threads}.")
        if not (self.search in ("ddg", "none") or self.search.startswith(("local:", "milvus:"))):
            raise ConfigError(
                f"OUTLYNE_SEARCH={self.search!r} is not 'ddg', 'none', 'local:/path/to/folder' or "
                "'milvus:PATH.db' / 'milvus:http://HOST:PORT'."
            )
        _ = self.milvus_uri  # a malformed milvus: target fails here, at start-up
        if self.encoder is not None:
            from outlyne.model.wire import parse_endpoint

            parse_endpoint(self.encoder)  # raises ConfigError naming OUTLYNE_ENCODER

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
            encoder=env.get("OUTLYNE_ENCODER", "").strip() or None,
        )

    def with_options(self, **changes: object) -> Config:
        """A copy with some fields changed (the config itself is never mutated)."""
        return replace(self, **changes)

    @property
    def milvus_uri(self) -> str | None:
        return milvus_uri(self.search) if self.search.startswith("milvus:") else None

    @property
    def local_search_folder(self) -> Path | None:
        return Path(self.search[len("local:") :]).expanduser() if self.search.startswith("local:") else None


def milvus_uri(entry: str) -> str:
    """milvus:PATH.db -> the absolute file (milvus-lite, embedded); milvus:http(s)://HOST:PORT -> the URL
    of a Milvus server or cluster. pymilvus tells the two apart the same way (a path ending in .db)."""
    target = entry[len("milvus:") :].strip()
    if re.fullmatch(r"https?://[^/\s:]+:\d+/?", target):
        return target.rstrip("/")
    if target.endswith(".db") and "://" not in target:
        return str(Path(target).expanduser().resolve())
    raise ConfigError(
        f"OUTLYNE_SEARCH={entry!r}: a Milvus gallery is milvus:PATH.db (milvus-lite) or milvus:http://HOST:PORT."
    )
