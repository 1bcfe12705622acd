"""The grammar of OUTLYNE_SEARCH: an ordered, comma-separated list of `name` or `name:ARGUMENT` words.

The table `KINDS` says what each name takes; outlyne.search.backends builds what the words name. Kept
apart from the builders so that the config can check the value without importing any engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from outlyne.errors import ConfigError

DEFAULT_SEARCH = "ddg,openverse,wikimedia"
OFF = "none"


@dataclass(frozen=True)
class Kind:
    argument: str | None = None  # what follows "name:" ("URL", "FOLDER"); None: nothing may follow
    required: bool = False  # the argument must be given
    gallery: bool = False  # searches by embedding and must stand alone
    url: bool = False  # the argument is an http(s) URL
    # Checks the argument and returns it normalized (ConfigError when it cannot be used).
    check: Callable[[str], str] | None = None


@dataclass(frozen=True)
class Step:
    name: str
    argument: str | None


def milvus_target(argument: str) -> str:
    """milvus:PATH.db -> the absolute file (milvus-lite, embedded); milvus:http(s)://HOST:PORT -> the URL
    of a Milvus server or cluster. pymilvus tells the two apart the same way (a path ending in .db)."""
    target = argument.strip()
    if re.fullmatch(r"https?://[^/\s:]+:\d+/?", target):
        return target.rstrip("/")
    if target.endswith(".db") and "://" not in target:
        return str(Path(target).expanduser().resolve())
    raise ConfigError(
        "OUTLYNE_SEARCH: a Milvus gallery is milvus:PATH.db (milvus-lite) or milvus:http://HOST:PORT, "
        f"not milvus:{target[:80]}."
    )


KINDS: dict[str, Kind] = {
    "ddg": Kind(argument="BACKEND+BACKEND"),  # ddgs engines, e.g. ddg:bing or ddg:duckduckgo+bing
    "openverse": Kind(argument="API_URL", url=True),  # another Openverse API (tests: 127.0.0.1)
    "wikimedia": Kind(argument="API_URL", url=True),  # another MediaWiki's api.php
    "searxng": Kind(argument="URL", required=True, url=True),
    "local": Kind(argument="FOLDER", required=True, gallery=True),
    "milvus": Kind(argument="PATH.db|URL", required=True, gallery=True, check=milvus_target),
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
        argument = kind.check(rest) if kind.check else rest.strip()
        return [Step(head.strip().lower(), argument)]
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
        if argument and kind.check:
            argument = kind.check(argument)
        steps.append(Step(name, argument))
    if len({(s.name, s.argument) for s in steps}) < len(steps):
        raise ConfigError("OUTLYNE_SEARCH names the same engine twice.")
    if len(steps) > 1 and any(KINDS[s.name].gallery for s in steps):
        raise ConfigError("OUTLYNE_SEARCH: a gallery (local:, milvus:) cannot be chained with other engines.")
    return steps
