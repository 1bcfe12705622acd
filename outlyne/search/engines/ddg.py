"""DuckDuckGo images through ddgs."""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from outlyne.errors import SearchUnavailable
from outlyne.search.types import SearchRequest, SearchResult


class ImagesClient(Protocol):
    """The slice of `ddgs.DDGS` the backend uses; tests inject a fake with the same method."""

    def images(self, query: str, **kwargs: Any) -> list[dict[str, Any]]: ...


def _default_client(timeout: float) -> ImagesClient:
    from ddgs import DDGS  # imported lazily: ddgs pulls in primp and lxml, which local search never needs

    return DDGS(timeout=timeout)


def _as_int(value: object) -> int | None:
    # ddgs returns sizes as strings ("474"), sometimes empty.
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number > 0 else None


def results_from_ddgs(rows: list[Mapping[str, Any]]) -> list[SearchResult]:
    """ddgs image dicts -> SearchResult. Rows without a thumbnail are dropped (thumbnails are what we show
    and re-rank, since image hosts block hot-linking); a missing full-size URL falls back to the thumbnail.
    `engine_rank` keeps the engine's own position, so gaps mark dropped rows."""
    results = []
    for position, row in enumerate(rows):
        thumbnail = str(row.get("thumbnail") or "").strip()
        if not thumbnail:
            continue
        results.append(
            SearchResult(
                title=str(row.get("title") or "").strip(),
                thumbnail=thumbnail,
                image=str(row.get("image") or "").strip() or thumbnail,
                url=str(row.get("url") or "").strip(),
                source=str(row.get("source") or "").strip(),
                width=_as_int(row.get("width")),
                height=_as_int(row.get("height")),
                engine_rank=position,
            )
        )
    return results


class _TTLCache:
    """A small thread-safe LRU with expiry: Gradio runs handlers on worker threads."""

    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[object, tuple[float, list[SearchResult]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: object) -> list[SearchResult] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored_at, value = entry
            if self._clock() - stored_at >= self._ttl:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return list(value)

    def put(self, key: object, value: list[SearchResult]) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (self._clock(), list(value))
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)


class DuckDuckGoBackend:
    """DuckDuckGo images through `ddgs`, with a per-call timeout, retries and a short-lived cache.

    ddgs 9 reports a refusal (rate limit, missing vqd token, an HTTP 403 that leaves no results) as a plain
    `DDGSException` and slowness as `TimeoutException` (a subclass): both are retried with jittered
    exponential backoff. The cache means a person pressing the button twice does not hammer the engine.
    An empty or blank query returns [] without calling the engine: there is nothing to search for, and the
    caller still shows its concepts and the (empty) query, which explains the empty gallery.
    """

    name = "ddg"

    def __init__(
        self,
        *,
        client_factory: Callable[[float], ImagesClient] = _default_client,
        timeout: float = 10,
        retries: int = 3,
        backoff: float = 1.0,
        cache_ttl: float = 300,
        cache_size: int = 128,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if retries < 1:
            raise ValueError("retries counts tries and must be at least 1")
        self._client_factory = client_factory
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._cache = _TTLCache(cache_ttl, cache_size, clock)

    def backoff_delay(self, failures: int) -> float:
        """Delay after the n-th failure (1-based): "equal jitter", half fixed and half random, so the delay
        still grows exponentially while concurrent clients spread out."""
        ceiling = self._backoff * 2 ** (failures - 1)
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def search(self, request: SearchRequest) -> list[SearchResult]:
        query = " ".join(request.query.split())
        if not query:
            return []
        key = (query, request.region, request.safesearch, request.max_results)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        rows = self._fetch_with_retries(query, request)
        results = results_from_ddgs(rows)
        self._cache.put(key, results)
        return results

    def _fetch_with_retries(self, query: str, request: SearchRequest) -> list[dict[str, Any]]:
        from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

        last_error: Exception | None = None
        for attempt in range(1, self._retries + 1):
            try:
                # A fresh client per try: ddgs picks a new browser impersonation for each client, which
                # is what a retry after a refusal needs.
                client = self._client_factory(self._timeout)
                return client.images(
                    query,
                    region=request.region,
                    safesearch=request.safesearch,
                    max_results=request.max_results,
                    backend="duckduckgo",
                )
            except DDGSException as error:
                last_error = error
                if attempt < self._retries:
                    self._sleep(self.backoff_delay(attempt))
        tries = f"{self._retries} {'try' if self._retries == 1 else 'tries'}"
        if isinstance(last_error, TimeoutException):
            raise SearchUnavailable(f"DuckDuckGo did not answer in time after {tries}.") from last_error
        if isinstance(last_error, RatelimitException) or "no results" in str(last_error).lower():
            raise SearchUnavailable(
                "DuckDuckGo is rate-limiting requests; try again in a minute."
            ) from last_error
        if _is_unreachable(last_error):
            raise SearchUnavailable(
                "DuckDuckGo cannot be reached from this server (a network or DNS failure)."
            ) from last_error
        # Other DDGSExceptions are usually refusals (no vqd token): said as one, without the library's
        # text (long, and it can carry URLs).
        raise SearchUnavailable(
            f"DuckDuckGo refused or failed the search after {tries}; try again in a minute."
        ) from last_error


# How ddgs (through primp/httpx) words a failure to resolve or connect, as opposed to a refusal.
_UNREACHABLE_MARKERS = (
    "dns",
    "name or service not known",
    "failed to lookup",
    "nodename nor servname",
    "temporary failure in name resolution",
    "connection refused",
    "connecterror",
    "connect error",
    "network is unreachable",
)


def _is_unreachable(error: Exception | None) -> bool:
    text = f"{type(error).__name__} {error}".lower()
    return any(marker in text for marker in _UNREACHABLE_MARKERS)
