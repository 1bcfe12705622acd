"""Pure functions that turn pipeline results into the values Gradio components display.

Kept apart from app.py so they can be tested without a browser, a server or a model: they take plain
result objects (concept scores, search results, timings) and return dicts, lists and Markdown strings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real types; at run time any object with these attributes will do
    from outlyne.concepts.file import ConceptScore
    from outlyne.pipeline import SearchOutcome
    from outlyne.search.types import SearchResult

CONCEPT_TABLE_HEADERS = ["concept", "group", "probability", "cosine"]

# Names people know, for the status line; anything else is shown as the backend reports it.
BACKEND_NAMES = {
    "ddg": "DuckDuckGo",
    "duckduckgo": "DuckDuckGo",
    "local": "the local gallery",
    "milvus": "the Milvus gallery",
}

# The order stages run in; a stage the pipeline adds later is still shown, after these.
STAGE_ORDER = ("normalize", "embed", "score", "query", "embed_query", "search", "rerank")

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def concept_label_value(concepts: Iterable[ConceptScore]) -> dict[str, float]:
    """{label: probability} for gr.Label, best first (labels are unique within a bank)."""
    return {c.label: round(float(c.score), 4) for c in concepts}


def concept_table(concepts: Iterable[ConceptScore]) -> list[list[Any]]:
    """Rows for the "raw scores" table: the probability and the cosine it came from."""
    return [[c.label, c.group, round(float(c.score), 4), round(float(c.cosine), 4)] for c in concepts]


def escape_markdown(text: str) -> str:
    """Titles come from web pages: keep their brackets and stars from turning into links or emphasis."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def format_similarity(similarity: float | None) -> str:
    return "" if similarity is None else f"similarity {similarity:.2f}"


def result_caption(result: SearchResult, max_title: int = 60) -> str:
    """ "0.83 · Title": the similarity first, because the gallery cuts long captions at the end."""
    title = " ".join((result.title or "").split()) or "untitled"
    if len(title) > max_title:
        title = title[: max_title - 1].rstrip() + "…"
    return title if result.similarity is None else f"{result.similarity:.2f} · {title}"


def gallery_items(results: Sequence[SearchResult]) -> list[tuple[str, str]]:
    """(thumbnail, caption) pairs for gr.Gallery. Web results show the engine's thumbnail URL because
    image hosts often refuse hot-linked full-size images; local results show the file itself."""
    return [(r.thumbnail or r.image, result_caption(r)) for r in results if r.thumbnail or r.image]


def _is_web_link(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def sources_markdown(results: Sequence[SearchResult]) -> str:
    """A numbered list in gallery order, each entry linking to the page the image comes from.

    Only http(s) pages become links: a local gallery's file:// URIs would not open from a browser tab,
    so they are shown as the file name instead.
    """
    if not results:
        return ""
    lines = []
    for number, result in enumerate(results, start=1):
        title = escape_markdown(result.title or "untitled")
        page = result.url or result.image
        where = f"[{title}](<{page}>)" if _is_web_link(page) else f"{title} (`{page.rsplit('/', 1)[-1]}`)"
        details = [
            d for d in (escape_markdown(result.source or ""), format_similarity(result.similarity)) if d
        ]
        lines.append(f"{number}. {where}" + (f" — {' · '.join(details)}" if details else ""))
    return "\n".join(lines)


def timings_markdown(timings_ms: Mapping[str, float]) -> str:
    """One line of small print: each stage's wall-clock time, then the total."""
    if not timings_ms:
        return ""
    known = [k for k in STAGE_ORDER if k in timings_ms]
    others = [k for k in timings_ms if k not in STAGE_ORDER and k != "total"]
    parts = [f"{name.replace('_', ' ')} {_ms(timings_ms[name])}" for name in known + others]
    if "total" in timings_ms:
        parts.append(f"total {_ms(timings_ms['total'])}")
    return "<small>" + " · ".join(parts) + "</small>"


def _ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def backend_name(name: str) -> str:
    return BACKEND_NAMES.get(name, name)


def search_status(outcome: SearchOutcome) -> str:
    """What the gallery shows right now, in one sentence (plus what was left out, when anything was)."""
    where = backend_name(outcome.backend)
    if outcome.warning:
        return f"No results: {outcome.warning}"
    if outcome.backend == "none":
        return "Image search is turned off on this server (OUTLYNE_SEARCH=none)."
    count = len(outcome.results)
    if count == 0:
        return f'No images found for "{outcome.query}" in {where}.'
    noun = "image" if count == 1 else "images"
    if not outcome.final:
        return f"{count} {noun} from {where} in the engine's order; re-ranking by similarity to the sketch…"
    order = "ordered by similarity to the sketch" if outcome.reranked else "in the engine's order"
    text = f"{count} {noun} from {where}, {order}."
    left_out = sum(outcome.dropped.values()) + outcome.duplicates_collapsed
    if left_out:
        reasons = [f"{_reason(reason)} ({n})" for reason, n in sorted(outcome.dropped.items()) if n]
        if outcome.duplicates_collapsed:
            reasons.append(f"near-duplicates ({outcome.duplicates_collapsed})")
        text += f" Left out: {', '.join(reasons)}."
    return text


def _reason(reason: str) -> str:
    """Fetch failure reasons are short phrases ("timeout") or a bare HTTP status ("404")."""
    return f"HTTP {reason}" if reason.isdigit() else reason.replace("_", " ")


def json_safe(value: Any) -> Any:
    """Plain JSON types for API answers: numpy scalars and arrays become numbers and lists, tuples become
    lists, paths become strings, and NaN or infinity (not valid JSON) become None."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, without importing numpy here
        return json_safe(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)
