"""Small, defensive readers for fields of engine answers (untrusted JSON: any field may be missing,
of the wrong type, huge, or carry HTML)."""

from __future__ import annotations

import html
import re

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
