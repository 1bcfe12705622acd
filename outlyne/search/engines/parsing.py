"""Small, defensive readers for fields of engine answers (untrusted JSON: any field may be missing,
of the wrong type, huge, or carry HTML)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from typing import Any

from outlyne.search.report import ENGINE_ERROR, EngineFailure
from outlyne.search.types import SearchResult

MAX_TEXT = 300  # characters kept of a title or a creator's name
MAX_URL = 2048

_TAG = re.compile(r"<[^>]*>")


def as_int(value: object) -> int | None:
    """Positive integers from numbers or strings ("474"); None for anything else."""
    if isinstance(value, bool):
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number > 0 else None


def clean_text(value: object, limit: int = MAX_TEXT) -> str:
    """Plain one-line text: tags dropped (Commons' Artist field is HTML), entities decoded, whitespace
    collapsed, cut to `limit` characters."""
    if not isinstance(value, str):
        return ""
    text = " ".join(html.unescape(_TAG.sub(" ", value[: limit * 20])).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def web_url(value: object) -> str:
    """An http(s) URL of sane length, else "". Protocol-relative URLs ("//host/x") get https."""
    if not isinstance(value, str):
        return ""
    url = value.strip()
    if url.startswith("//"):
        url = "https:" + url
    if len(url) > MAX_URL or not url.lower().startswith(("http://", "https://")):
        return ""
    return url


def results_list(data: Any) -> list[Any]:
    """The `results` list of an answer shaped {"results": [...]}, or EngineFailure when it has none."""
    rows = data.get("results") if isinstance(data, Mapping) else None
    if not isinstance(rows, list):
        raise EngineFailure(ENGINE_ERROR, "unexpected answer (no results list)")
    return rows


def read_rows(
    rows: list[Any], read: Callable[[int, Mapping[str, Any]], SearchResult | None]
) -> list[SearchResult]:
    """`read(position, row)` for each row that is a JSON object, in the engine's order; rows it finds
    nothing to show in (None) are dropped. The position counts every row, so it stays the engine's own
    rank when a malformed row is skipped."""
    results = []
    for position, row in enumerate(rows):
        if isinstance(row, Mapping):
            result = read(position, row)
            if result is not None:
                results.append(result)
    return results
