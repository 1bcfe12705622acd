"""What every search backend takes and returns.

A backend has one method, `search(SearchRequest) -> list[SearchResult]`, so the pipeline, the CLI and the
tests treat web engines and local galleries alike. Re-ranking by what the thumbnails look like is a
separate stage (rerank.py): backends return the engine's own order. What differs between backends is
declared, not guessed from a name: callers ask `supports_text_query` and `ranks_visually`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

SAFESEARCH_LEVELS = ("on", "moderate", "off")


@dataclass(frozen=True)
class SearchResult:
    title: str
    thumbnail: str  # URL for web results, absolute file path for the local gallery
    image: str
    url: str  # the page the image comes from (a file:// URI for the local gallery)
    source: str
    width: int | None = None
    height: int | None = None
    engine_rank: int = 0  # 0-based position the engine gave it
    similarity: float | None = None  # cosine to the sketch, set by re-ranking / local search
    # Attribution, where the engine gives it (Openverse, Wikimedia Commons): shown beside the picture.
    licence: str | None = None  # "CC BY-SA 4.0"
    licence_url: str | None = None
    creator: str | None = None


@dataclass(frozen=True)
class SearchRequest:
    query: str
    max_results: int = 30
    safesearch: str = "moderate"  # "on" | "moderate" | "off"
    region: str = "wt-wt"
    image_embedding: np.ndarray | None = None  # the sketch's unit vector (local search uses it)
    # Backends that search by embedding (galleries: `supports_text_query` False) can blend in the query's
    # unit vector, weighted by text_weight (None = the backend's default). Per request, so concurrent
    # sessions never change a shared backend.
    text_embedding: np.ndarray | None = None
    text_weight: float | None = None

    def __post_init__(self) -> None:
        # Programming errors, not user errors: the UI and CLI offer only valid choices.
        if self.safesearch not in SAFESEARCH_LEVELS:
            raise ValueError(f"safesearch must be one of {SAFESEARCH_LEVELS}, not {self.safesearch!r}")
        if self.max_results < 1:
            raise ValueError(f"max_results must be positive, not {self.max_results}")
        if self.text_weight is not None and not 0.0 <= self.text_weight <= 1.0:
            raise ValueError(f"text_weight must lie in [0, 1], not {self.text_weight}")


class SearchBackend(Protocol):
    name: str
    # True: searches by the query's words (web engines), so a blank query has nothing to search for.
    # False: searches by embedding (galleries), and can blend the query's text embedding in.
    supports_text_query: bool
    # True: results come ordered by likeness to the sketch already (galleries), so they are not re-ranked.
    ranks_visually: bool

    def search(self, request: SearchRequest) -> list[SearchResult]: ...
