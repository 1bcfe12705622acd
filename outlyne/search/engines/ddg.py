"""DuckDuckGo (and Bing) images through `ddgs`, which scrapes them: no key, no licence information.

`ddgs` takes a comma-separated `backend` list and tries those engines in its own order; the default here is
DuckDuckGo then Bing. From a datacenter address these often refuse, and ddgs 9 reports a refusal (an HTTP
403, a missing vqd token) exactly like "no results". So an empty answer counts against this engine's
breaker (`empty_is_suspect`), and the chain moves on to an engine that keeps answering.

Exceptions are classified by what caused them: ddgs wraps its HTTP client's errors, and a DNS failure
(primp's `DNSError`) must read as "offline", not as rate limiting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from outlyne.search.engines.parsing import as_int, clean_text, read_rows, web_url
from outlyne.search.engines.words import WordSearch
from outlyne.search.report import ENGINE_ERROR, NO_RESULTS, OFFLINE, RATE_LIMITED, TIMED_OUT, EngineFailure
from outlyne.search.types import SearchRequest, SearchResult

about = {
    "website": "https://github.com/deedy5/ddgs",
    "official_api_documentation": None,  # scrapes the engines' web pages
    "require_api_key": False,
    "results": "HTML/JSON (scraped)",
}
NAME = "ddg"
TITLE = "DuckDuckGo"
DEFAULT_BACKENDS = ("duckduckgo", "bing")  # ddgs' image engines, in the order asked
MAX_RESULTS = 100  # ddgs pages through results until it has max_results: keep that bounded


class ImagesClient(Protocol):
    """The slice of `ddgs.DDGS` used here; tests inject a fake with the same method."""

    def images(self, query: str, **kwargs: Any) -> list[dict[str, Any]]: ...


def default_client(timeout: float) -> ImagesClient:
    from ddgs import DDGS  # imported lazily: ddgs pulls in primp and lxml

    return DDGS(timeout=max(1, round(timeout)))


def parse(rows: Any) -> list[SearchResult]:
    """ddgs image dicts -> results. Rows without a thumbnail are dropped (thumbnails are what we show and
    re-rank, since image hosts block hot-linking); `engine_rank` keeps ddgs' position."""
    return read_rows(rows if isinstance(rows, list) else [], _result)


def _result(position: int, row: Mapping[str, Any]) -> SearchResult | None:
    thumbnail = web_url(row.get("thumbnail"))
    if not thumbnail:
        return None
    return SearchResult(
        title=clean_text(row.get("title")),
        thumbnail=thumbnail,
        image=web_url(row.get("image")) or thumbnail,
        url=web_url(row.get("url")),
        source=clean_text(row.get("source")),
        width=as_int(row.get("width")),
        height=as_int(row.get("height")),
        engine_rank=position,
    )


def _causes(error: BaseException) -> list[BaseException]:
    """The error, what it wraps (ddgs passes exceptions as arguments), and what caused each."""
    found: list[BaseException] = []
    pending = [error]
    while pending and len(found) < 10:
        current = pending.pop()
        if current in found:
            continue
        found.append(current)
        pending += [a for a in current.args if isinstance(a, BaseException)]
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return found


def classify(error: BaseException) -> EngineFailure:
    causes = _causes(error)
    names = {type(e).__name__ for e in causes}
    text = " ".join(str(e) for e in causes).lower()
    if "DNSError" in names or "dns error" in text or "name resolution" in text:
        return EngineFailure(OFFLINE, "DNS lookup failed")
    if "ConnectError" in names or "connection refused" in text:
        return EngineFailure(OFFLINE, "connection failed")
    if "TimeoutException" in names or "TimeoutError" in names or "timed out" in text:
        return EngineFailure(TIMED_OUT, "timed out")
    if "RatelimitException" in names or "ratelimit" in text or "vqd" in text or "403" in text:
        return EngineFailure(RATE_LIMITED, "refused")
    if "no results" in text:
        return EngineFailure(NO_RESULTS, "no results (also what a refusal looks like)")
    return EngineFailure(ENGINE_ERROR, clean_text(str(error), 120))


class Engine(WordSearch):
    name = NAME
    title = TITLE
    filters_mature = True
    empty_is_suspect = True

    def __init__(
        self,
        backends: tuple[str, ...] = DEFAULT_BACKENDS,
        *,
        timeout: float = 6.0,
        client_factory: Callable[[float], ImagesClient] = default_client,
    ) -> None:
        if not backends:
            raise ValueError("ddg needs at least one ddgs backend")
        self.backends = backends
        self.timeout = timeout
        self.cache_id = f"{NAME}:{','.join(backends)}"
        self._client_factory = client_factory

    def search(self, request: SearchRequest) -> list[SearchResult]:
        from ddgs.exceptions import DDGSException

        # A fresh client per search: ddgs picks a new browser impersonation for each client.
        client = self._client_factory(self.timeout)
        try:
            rows = client.images(
                request.query,
                region=request.region,
                safesearch=request.safesearch,
                max_results=min(request.max_results, MAX_RESULTS),
                backend=",".join(self.backends),
            )
        except DDGSException as error:
            raise classify(error) from error
        return parse(rows)[: request.max_results]
