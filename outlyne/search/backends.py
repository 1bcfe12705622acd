"""OUTLYNE_SEARCH -> the search backend."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from outlyne.search.engines.ddg import DuckDuckGoBackend
from outlyne.search.types import SearchBackend

if TYPE_CHECKING:
    from outlyne.config import Config
    from outlyne.model.embedder import Embedder


def make_backend(config: Config, encoder: Embedder) -> SearchBackend | None:
    """The backend OUTLYNE_SEARCH names; None when search is off."""
    if config.search == "none":
        return None
    if config.search == "ddg":
        return DuckDuckGoBackend()
    if config.milvus_uri is not None:
        from outlyne.search.galleries.milvus import MilvusGalleryBackend

        return MilvusGalleryBackend(config.milvus_uri, encoder)
    folder = config.local_search_folder
    if folder is not None:
        from outlyne.search.galleries.folder import LocalGalleryBackend

        return LocalGalleryBackend(Path(folder), encoder)
    raise ValueError(f"unknown search backend {config.search!r}")  # Config validates this already
