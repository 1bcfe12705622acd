"""OUTLYNE_SEARCH -> the search backend: an ordered chain of web engines, one gallery, or none.

The value is a comma-separated list of `name` or `name:ARGUMENT` words, read through the table `KINDS`;
a new engine or gallery is one entry there and one builder function. Web engines form a `SearchChain`
(fallback, breakers, shared cache); a gallery searches by the sketch's embedding rather than by words,
ranks by likeness itself, and so stands alone. `none` turns search off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outlyne.errors import ConfigError

if TYPE_CHECKING:
    from outlyne.config import Config
    from outlyne.model.embedder import Embedder
    from outlyne.search.types import SearchBackend

DEFAULT_SEARCH = "ddg,openverse,wikimedia"
OFF = "none"
CACHE_FILE = "search-results.sqlite3"

Builder = Callable[[str | None, "Config", "Embedder"], Any]


@dataclass(frozen=True)
class Kind:
    build: Builder
    argument: str | None = None  # what follows "name:" ("URL", "FOLDER"); None: nothing may follow
    required: bool = False  # the argument must be given
    gallery: bool = False  # searches by embedding and must stand alone
    url: bool = False  # the argument is an http(s) URL


@dataclass(frozen=True)
class Step:
    name: str
    argument: str | None


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
    return LocalGalleryBackend(Path(argument).expanduser(), encoder)


KINDS: dict[str, Kind] = {
    "ddg": Kind(_ddg, argument="BACKEND+BACKEND"),  # ddgs engines, e.g. ddg:bing or ddg:duckduckgo+bing
    "openverse": Kind(_openverse, argument="API_URL", url=True),  # another Openverse API (tests: 127.0.0.1)
    "wikimedia": Kind(_wikimedia, argument="API_URL", url=True),  # another MediaWiki's api.php
    "searxng": Kind(_searxng, argument="URL", required=True, url=True),
    "local": Kind(_local, argument="FOLDER", required=True, gallery=True),
}


def _usage() -> str:
    words = [f"{n}:{k.argument}" if k.required else n for n, k in KINDS.items()]
    return ", ".join([*words, OFF])


def parse_search(value: str) -> list[Step]:
    """'ddg,openverse' -> [Step('ddg', None), Step('openverse', None)]; [] for 'none'. ConfigError, naming
    the word at fault, for anything else."""
    value = value.strip()
    if value.lower() == OFF:
        return []
    head, colon, rest = value.partition(":")
    kind = KINDS.get(head.strip().lower())
    if colon and kind is not None and kind.gallery:
        # A gallery stands alone, so its argument is taken whole: a folder name may contain commas.
        if not rest.strip():
            raise ConfigError(
                f"OUTLYNE_SEARCH: {head} needs a {kind.argument}, as in {head}:{kind.argument}."
            )
        return [Step(head.strip().lower(), rest.strip())]
    steps = []
    for word in value.split(","):
        word = word.strip()
        name, colon, argument = word.partition(":")
        name = name.strip().lower()
        kind = KINDS.get(name)
        if kind is None:
            raise ConfigError(f"OUTLYNE_SEARCH: {word!r} is not a search engine; use {_usage()}.")
        argument = argument.strip() if colon else None
        if kind.required and not argument:
            raise ConfigError(
                f"OUTLYNE_SEARCH: {name} needs a {kind.argument}, as in {name}:{kind.argument}."
            )
        if argument is not None and (kind.argument is None or not argument):
            raise ConfigError(f"OUTLYNE_SEARCH: {word!r} has an empty or unexpected argument.")
        if argument and kind.url and not argument.lower().startswith(("http://", "https://")):
            raise ConfigError(f"OUTLYNE_SEARCH: {name} takes an http(s) URL, not {argument!r}.")
        steps.append(Step(name, argument))
    if len({(s.name, s.argument) for s in steps}) < len(steps):
        raise ConfigError("OUTLYNE_SEARCH names the same engine twice.")
    if len(steps) > 1 and any(KINDS[s.name].gallery for s in steps):
        raise ConfigError("OUTLYNE_SEARCH: a gallery (local:FOLDER) cannot be chained with other engines.")
    return steps


def make_backend(config: Config, encoder: Embedder) -> SearchBackend | None:
    """The backend OUTLYNE_SEARCH names; None when search is off."""
    steps = parse_search(config.search)
    if not steps:
        return None
    first = KINDS[steps[0].name]
    if first.gallery:  # parse_search lets a gallery only stand alone
        return first.build(steps[0].argument, config, encoder)
    from outlyne.search.cache import ResultCache
    from outlyne.search.chain import SearchChain

    engines = [KINDS[s.name].build(s.argument, config, encoder) for s in steps]
    cache = None
    if config.search_cache_ttl > 0:
        cache = ResultCache(config.cache_dir / CACHE_FILE, ttl=config.search_cache_ttl)
    return SearchChain(engines, deadline=config.search_deadline, cache=cache)


def build_web_engines(config: Config) -> tuple[list[Any], list[str]]:
    """The web engines OUTLYNE_SEARCH names, each on its own (for `search-check`), and the names of the
    galleries it names, which are not web engines."""
    steps = parse_search(config.search)
    engines = [KINDS[s.name].build(s.argument, config, None) for s in steps if not KINDS[s.name].gallery]
    return engines, [s.name for s in steps if KINDS[s.name].gallery]
