"""Pure functions that turn pipeline results into the values Gradio components display.

Kept apart from app.py so they can be tested without a browser, a server or a model: they take plain
result objects (concept scores, search results, timings) and return dicts, lists and Markdown strings.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from outlyne.web.gallery_files import display_value

if TYPE_CHECKING:  # the real types; at run time any object with these attributes will do
    from outlyne.concepts.file import ConceptScore
    from outlyne.pipeline import SearchOutcome
    from outlyne.search.types import SearchResult
    from outlyne.sketch.explain import Heatmap


# The score view's look: the best guess reads at a glance, the rest as quiet bars; dimmed while a newer
# drawing is being scored (the class is set by web/live.py; the delay keeps fast runs from flickering).
SCORES_CSS = """
.outlyne-scores { display: flex; flex-direction: column; gap: 6px; transition: opacity .2s ease .25s; }
.outlyne-scores :where(button) { all: unset; cursor: pointer; box-sizing: border-box; }
.outlyne-scores :where(button):focus-visible { outline: 2px solid var(--color-accent); }
.outlyne-best { display: block; padding: 2px 0; }
.outlyne-best-label { font-size: 2rem; font-weight: 700; line-height: 1.15; }
.outlyne-best-value { font-size: 1.4rem; font-weight: 600; color: var(--color-accent); margin-left: .4em; }
.outlyne-bars { display: flex; flex-direction: column; gap: 3px; }
.outlyne-bar { display: grid; grid-template-columns: minmax(6em, 40%) 1fr 3.5em; gap: 8px;
  align-items: center; width: 100%; font-size: var(--text-md); }
.outlyne-bar-label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.outlyne-bar-track { height: 10px; border-radius: 5px; background: var(--background-fill-secondary); }
.outlyne-bar-track > span { display: block; height: 100%; border-radius: 5px; opacity: .7;
  background: var(--color-accent); }
.outlyne-bar-value { text-align: right; font-variant-numeric: tabular-nums;
  color: var(--body-text-color-subdued); }
.outlyne-raw summary { cursor: pointer; color: var(--body-text-color-subdued); font-size: var(--text-sm); }
.outlyne-raw table { font-size: var(--text-sm); font-variant-numeric: tabular-nums; }
.outlyne-hint { color: var(--body-text-color-subdued); margin: 0; }
"""

# Names people know, for the status line; anything else is shown as the backend reports it.
BACKEND_NAMES = {
    "ddg": "DuckDuckGo",
    "duckduckgo": "DuckDuckGo",
    "openverse": "Openverse",
    "wikimedia": "Wikimedia Commons",
    "searxng": "SearXNG",
    "web": "the web",  # the engine chain, before one of its engines has answered
    "local": "the local gallery",
    "milvus": "the Milvus gallery",
}

# The order stages run in; a stage the pipeline adds later is still shown, after these.
STAGE_ORDER = ("normalize", "embed", "score", "query", "embed_query", "search", "rerank")

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def percent(probability: float) -> str:
    """0.873 -> "87%"; small values keep a significant digit so a real difference never reads as "0%"."""
    value = float(probability) * 100
    if value >= 10 or value == 0:
        return f"{value:.0f}%"
    if value >= 1:
        return f"{value:.1f}%"
    return f"{value:.2g}%"


def scores_html(concepts: Sequence[ConceptScore], version: int, *, hint: str = "") -> str:
    """The score view as HTML: the best guess large with its probability (`#outlyne-best-guess`), the
    next ones as bars, and the raw cosines folded away. Every concept is a button that asks "why?".

    `version` is echoed as `data-version` for the page's staleness check (web/live.py); labels may come
    from a person's own concepts, so every text is escaped."""
    opening = f'<div class="outlyne-scores" data-version="{int(version)}">'
    if not concepts:
        message = html.escape(hint or "Draw something: what it looks like shows here.")
        return f'{opening}<p class="outlyne-hint">{message}</p></div>'
    best, rest = concepts[0], concepts[1:]
    widest = max(float(c.score) for c in concepts) or 1.0
    best_guess = (
        f'<span id="outlyne-best-guess"><span class="outlyne-best-label">{html.escape(best.label)}</span> '
        f'<span class="outlyne-best-value">{percent(best.score)}</span></span>'
    )
    bars = "".join(
        _why_button(
            c.label,
            "outlyne-bar",
            f'<span class="outlyne-bar-label">{html.escape(c.label)}</span>'
            f'<span class="outlyne-bar-track"><span style="width:{100 * float(c.score) / widest:.1f}%">'
            f'</span></span><span class="outlyne-bar-value">{percent(c.score)}</span>',
        )
        for c in rest
    )
    header = "".join(f"<th>{name}</th>" for name in ("concept", "group", "probability", "cosine"))
    rows = "".join(
        f"<tr><td>{html.escape(c.label)}</td><td>{html.escape(c.group or '')}</td>"
        f"<td>{float(c.score):.4f}</td><td>{float(c.cosine):.4f}</td></tr>"
        for c in concepts
    )
    return (
        f"{opening}{_why_button(best.label, 'outlyne-best', best_guess)}"
        f'<div class="outlyne-bars">{bars}</div>'
        '<details class="outlyne-raw"><summary>Raw scores</summary>'
        f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table></details></div>"
    )


def _why_button(label: str, css_class: str, content: str) -> str:
    quoted = html.escape(label, quote=True)
    attributes = f'type="button" class="{css_class}" data-label="{quoted}" title="Why {quoted}?"'
    return f"<button {attributes}>{content}</button>"


def why_caption(heatmap: Heatmap) -> str:
    """One line under the heatmap: how to read it, and what it is made of."""
    n = heatmap.grid.shape[0]
    return (
        f"**Why “{escape_markdown(heatmap.label)}”**: red parts of the drawing raise its score, blue parts "
        f"lower it. <small>Each of the {n}×{n} cells with ink was erased in turn "
        f"({heatmap.runs} runs, {_ms(heatmap.elapsed_ms)}).</small>"
    )


WHY_HINT = "Tap a concept in the list to see which parts of the drawing raise or lower its score."


def escape_markdown(text: str) -> str:
    """Titles come from web pages: keep their brackets and stars from turning into links or emphasis."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def format_similarity(similarity: float | None) -> str:
    return "" if similarity is None else f"similarity {similarity:.2f}"


def _shorten(text: str, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def attribution(result: SearchResult, max_creator: int = 40) -> str:
    """ "Ann Smith · CC BY-SA 4.0": whichever of creator and licence the engine gave; "" for neither."""
    parts = [_shorten(result.creator or "", max_creator), " ".join((result.licence or "").split())]
    return " · ".join(p for p in parts if p)


def result_caption(result: SearchResult, max_title: int = 60) -> str:
    """ "0.83 · Title — Ann Smith · CC BY-SA 4.0": the similarity first, because the gallery cuts long
    captions at the end; the attribution last, where the engine gives one."""
    title = _shorten(result.title, max_title) or "untitled"
    caption = title if result.similarity is None else f"{result.similarity:.2f} · {title}"
    credit = attribution(result)
    return f"{caption} — {credit}" if credit else caption


def gallery_items(results: Sequence[SearchResult]) -> list[tuple[Any, str]]:
    """(thumbnail, caption) pairs for gr.Gallery. Web results show the engine's thumbnail URL because
    image hosts often refuse hot-linked full-size images; local results a downsized copy of the file."""
    items = [
        (display_value(r.thumbnail or r.image), result_caption(r)) for r in results if r.thumbnail or r.image
    ]
    return [(value, caption) for value, caption in items if value is not None]


def _is_web_link(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def _link_target(url: str) -> str:
    """A URL safe inside Markdown's `(<...>)`: an engine's URL must not be able to close the link."""
    return url.replace(" ", "%20").replace("<", "%3C").replace(">", "%3E")


def sources_markdown(results: Sequence[SearchResult]) -> str:
    """A numbered list in gallery order, each entry linking to the page the image comes from.

    Only http(s) pages become links: a local gallery's file:// URIs would not open from a browser tab,
    so they are shown as the file name instead. Creator and licence follow where the engine gave them,
    the licence linking to its text.
    """
    if not results:
        return ""
    lines = []
    for number, result in enumerate(results, start=1):
        title = escape_markdown(result.title or "untitled")
        page = result.url or result.image
        where = (
            f"[{title}](<{_link_target(page)}>)"
            if _is_web_link(page)
            else f"{title} (`{page.rsplit('/', 1)[-1]}`)"
        )
        licence = escape_markdown(result.licence or "")
        if licence and _is_web_link(result.licence_url or ""):
            licence = f"[{licence}](<{_link_target(result.licence_url or '')}>)"
        creator = escape_markdown(result.creator or "")
        details = [
            d
            for d in (
                escape_markdown(result.source or ""),
                f"by {creator}" if creator else "",
                licence,
                format_similarity(result.similarity),
            )
            if d
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
        if not outcome.results and outcome.attempts:
            # The chain's own sentence (search.report.failure_message): it names each engine tried.
            return f"No results: {outcome.warning}"
        return one_sentence(outcome.warning)
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


def one_sentence(text: str, limit: int = 160) -> str:
    """The first sentence of a message, at most `limit` characters: engines can answer with a page of
    text, and a status line is read at a glance."""
    text = " ".join(text.split())
    for end in (". ", "; ", "\n"):
        if end in text:
            text = text[: text.index(end) + 1].rstrip(";") + ("" if end == ". " else ".")
            break
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


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
