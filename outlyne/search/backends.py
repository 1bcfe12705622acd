"""OUTLYNE_SEARCH -> the search backend: an ordered chain of web engines, one gallery, or none.

The value's grammar is in outlyne/search/spec.py (`KINDS`); here each name has its builder in `BUILDERS`.
A new engine or gallery is one entry in each table and one builder function. Web engines form a
`SearchChain` (fallback, breakers, shared cache); a gallery searches by the sketch's embedding rather than
by words, ranks by likeness itself, and so stands alone. `none` turns search off.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outlyne.search.spec import KINDS, parse_search

if TYPE_CHECKING:
    from outlyne.config import Config
    from outlyne.model.embedder import Embedder
    from outlyne.search.types import SearchBackend

CACHE_FILE = "search-results.sqlite3"

Builder = Callable[[str | None, "Config", "Embedder"], Any]


# --- builders: (argument, config, encoder) -> engine or gallery -----------------------------------------


def _ddg(argument: str | None, config: Config, encoder: Embedder) -> Any:
    from outlyne.search.engines import ddg

    backends = (
        tuple(b.strip() for b in argument.split("+") if b.strip()) if argument else ddg.DEFAULT_BACKENDS
    )
    return ddg.Engine(backends)


def _openverse(argument: str | None, config: Config, encoder: Embedder) -> Any:
    from outlyne.search.engines import openverse

    credentials = None
    if config.openverse_client_id and config.openverse_client_secret:
        credentials = openverse.Credentials(config.openverse_client_id, config.openverse_client_secret)
    return openverse.Engine(
        base_url=argument or openverse.BASE_URL, credentials=credentials, contact=config.contact
    )


def _wikimedia(argument: str | None, config: Config, encoder: Embedder) -> Any:
    from outlyne.search.engines import wikimedia

    return wikimedia.Engine(api_url=argument or wikimedia.API_URL, contact=config.contact)


def _searxng(argument: str | None, config: Config, encoder: Embedder) -> Any:
    from outlyne.search.engines import searxng

    assert argument is not None  # the table marks it required
    return searxng.Engine(argument, contact=config.contact)


def _local(argument: str | None, config: Config, encoder: Embedder) -> Any:
    from outlyne.search.galleries.folder import LocalGalleryBackend

    assert argument is not None
    return LocalGalleryBackend(Path(argument).expanduser(), encoder, limits=config.image_limits)


def _milvus(argument: str | None, config: Config, encoder: Embedder) -> Any:
    from outlyne.search.galleries.milvus import MilvusGalleryBackend

    assert argument is not None  # spec.milvus_target normalized it: an absolute .db file or a server URL
    return MilvusGalleryBackend(argument, encoder, limits=config.image_limits)


BUILDERS: dict[str, Builder] = {
    "ddg": _ddg,
    "openverse": _openverse,
    "wikimedia": _wikimedia,
    "searxng": _searxng,
    "local": _local,
    "milvus": _milvus,
}


def make_backend(config: Config, encoder: Embedder) -> SearchBackend | None:
    """The backend OUTLYNE_SEARCH names; None when search is off."""
    steps = parse_search(config.search)
    if not steps:
        return None
    first = KINDS[steps[0].name]
    if first.gallery:  # parse_search lets a gallery only stand alone
        return BUILDERS[steps[0].name](steps[0].argument, config, encoder)
    from outlyne.search.cache import ResultCache
    from outlyne.search.chain import SearchChain

    engines = [BUILDERS[s.name](s.argument, config, encoder) for s in steps]
    cache = None
    if config.search_cache_ttl > 0:
        cache = ResultCache(config.cache_dir / CACHE_FILE, ttl=config.search_cache_ttl)
    return SearchChain(engines, deadline=config.search_deadline, cache=cache)


def build_web_engines(config: Config) -> tuple[list[Any], list[str]]:
    """The web engines OUTLYNE_SEARCH names, each on its own (for `search-check`), and the names of the
    galleries it names, which are not web engines."""
    steps = parse_search(config.search)
    engines = [BUILDERS[s.name](s.argument, config, None) for s in steps if not KINDS[s.name].gallery]
    return engines, [s.name for s in steps if KINDS[s.name].gallery]
