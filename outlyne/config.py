"""The one configuration object, read from OUTLYNE_* environment variables in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from outlyne.errors import ConfigError
from outlyne.images import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, ImageLimits
from outlyne.search.spec import DEFAULT_SEARCH, parse_search

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
    # An ordered chain of web engines ("ddg,openverse,wikimedia", "searxng:URL"), one gallery
    # ("local:FOLDER", "milvus:PATH.db", "milvus:http://HOST:PORT") or "none": see outlyne/search/spec.py.
    search: str = DEFAULT_SEARCH
    search_deadline: float = 15.0  # seconds for the whole chain (OUTLYNE_SEARCH_DEADLINE)
    search_cache_ttl: float = 3600.0  # seconds an answer is reused, 0 = never (OUTLYNE_SEARCH_CACHE_TTL)
    contact: str | None = None  # e-mail or URL added to the User-Agent, as Wikimedia asks (OUTLYNE_CONTACT)
    openverse_client_id: str | None = None  # optional Openverse API credentials: higher rate limits
    openverse_client_secret: str | None = field(default=None, repr=False)
    threads: int | None = None  # None: let OpenVINO decide (it sizes from the host, not the container)
    batch_size: int = 16
    top_k: int = 5
    # The one byte limit and the one pixel limit of every image we decode (outlyne.images): uploads, the
    # editor's layers, CLI files, gallery files. Gradio's upload limit (max_file_size) is the byte limit.
    max_image_bytes: int = MAX_IMAGE_BYTES
    max_image_pixels: int = MAX_IMAGE_PIXELS
    encoder: str | None = None  # OUTLYNE_ENCODER: None = in-process; kserve-v2://HOST:PORT[/NAME] = remote
    # Share links (outlyne/web/share_store.py): a cap per share, a cap on the folder (oldest shares are
    # evicted first) and how long a link lives. A typical share is 5-30 KB.
    share_max_bytes: int = 256 * 1024
    share_total_bytes: int = 64 * 1024 * 1024
    share_max_age_days: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_image_bytes", "max_image_pixels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"OUTLYNE_{name.upper()} must be a positive integer.")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"OUTLYNE_PRECISION={self.precision!r} is not one of {', '.join(PRECISIONS)}.")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"OUTLYNE_THREADS must be a positive integer, not {self.threads}.")
        parse_search(self.search)  # ConfigError naming the word at fault
        if self.search_deadline <= 0:
            raise ConfigError(f"OUTLYNE_SEARCH_DEADLINE must be positive, not {self.search_deadline}.")
        if self.search_cache_ttl < 0:
            raise ConfigError(f"OUTLYNE_SEARCH_CACHE_TTL must be 0 or more, not {self.search_cache_ttl}.")
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
            **_search_settings(env),
            model=env.get("OUTLYNE_MODEL", "").strip() or DEFAULT_MODEL,
            precision=env.get("OUTLYNE_PRECISION", "").strip().lower() or DEFAULT_PRECISION,
            cache_dir=Path(env["OUTLYNE_CACHE_DIR"]).expanduser()
            if env.get("OUTLYNE_CACHE_DIR")
            else defaults.cache_dir,
            concepts_path=Path(env["OUTLYNE_CONCEPTS"]).expanduser()
            if env.get("OUTLYNE_CONCEPTS")
            else defaults.concepts_path,
            threads=threads_value,
            max_image_bytes=_positive_int(env, "OUTLYNE_MAX_IMAGE_BYTES", defaults.max_image_bytes),
            max_image_pixels=_positive_int(env, "OUTLYNE_MAX_IMAGE_PIXELS", defaults.max_image_pixels),
            encoder=env.get("OUTLYNE_ENCODER", "").strip() or None,
        )

    def with_options(self, **changes: object) -> Config:
        """A copy with some fields changed (the config itself is never mutated)."""
        return replace(self, **changes)

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels)

    @property
    def milvus_uri(self) -> str | None:
        """The Milvus gallery OUTLYNE_SEARCH names (milvus:...), normalized; None for anything else."""
        steps = parse_search(self.search)
        return steps[0].argument if steps and steps[0].name == "milvus" else None

    @property
    def local_search_folder(self) -> Path | None:
        return Path(self.search[len("local:") :]).expanduser() if self.search.startswith("local:") else None


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    try:
        return float(text) if text else default
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {text!r}.") from None


def _search_settings(env: Mapping[str, str]) -> dict[str, object]:
    return {
        "search": env.get("OUTLYNE_SEARCH", "").strip() or DEFAULT_SEARCH,
        "search_deadline": _seconds(env, "OUTLYNE_SEARCH_DEADLINE", Config.search_deadline),
        "search_cache_ttl": _seconds(env, "OUTLYNE_SEARCH_CACHE_TTL", Config.search_cache_ttl),
        "contact": env.get("OUTLYNE_CONTACT", "").strip() or None,
        "openverse_client_id": env.get("OUTLYNE_OPENVERSE_CLIENT_ID", "").strip() or None,
        "openverse_client_secret": env.get("OUTLYNE_OPENVERSE_CLIENT_SECRET", "").strip() or None,
    }


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip().replace("_", "")
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{name} must be a positive integer, not {text[:40]!r}.")
    return int(text)
