"""`search-check`: ask each configured web engine once, directly, and report what happened.

What a Space owner runs when search stops working: no cache, no breaker, no fallback in the way; each
engine gets the same real query and its answer (or the reason it gave none) and latency are reported.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from outlyne.search.chain import WebEngine
from outlyne.search.report import ANSWERED, ENGINE_ERROR, LABELS, NO_RESULTS, EngineFailure
from outlyne.search.types import SearchRequest

DEFAULT_QUERY = "cat drawing"


@dataclass(frozen=True)
class CheckRow:
    engine: str  # title
    name: str  # the OUTLYNE_SEARCH word
    status: str  # ANSWERED or a failure kind
    detail: str
    latency_ms: float
    results: int

    @property
    def answered(self) -> bool:
        return self.status == ANSWERED

    @property
    def summary(self) -> str:
        label = LABELS.get(self.status, self.status)
        return f"{label}: {self.detail}" if self.detail else label

    def to_json(self) -> dict[str, object]:
        return {
            "engine": self.engine,
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "latency_ms": self.latency_ms,
            "results": self.results,
        }


def check_engines(
    engines: Sequence[WebEngine], query: str = DEFAULT_QUERY, max_results: int = 10
) -> list[CheckRow]:
    request = SearchRequest(query, max_results=max_results)
    rows = []
    for engine in engines:
        started = time.perf_counter()
        try:
            results = engine.search(request)
            status, detail = (ANSWERED, "") if results else (NO_RESULTS, "")
        except EngineFailure as failure:
            results, status, detail = [], failure.kind, failure.detail
        except Exception as error:
            results, status, detail = [], ENGINE_ERROR, type(error).__name__
        latency = round((time.perf_counter() - started) * 1000, 1)
        rows.append(CheckRow(engine.title, engine.name, status, detail, latency, len(results)))
    return rows


def format_table(rows: Sequence[CheckRow]) -> str:
    header = ("engine", "answered, or why not", "latency", "results")
    body = [(r.engine, r.summary, f"{r.latency_ms:.0f} ms", str(r.results)) for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(4)]
    lines = []
    for line in [header, *body]:
        cells = [
            line[0].ljust(widths[0]),
            line[1].ljust(widths[1]),
            line[2].rjust(widths[2]),
            line[3].rjust(widths[3]),
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
