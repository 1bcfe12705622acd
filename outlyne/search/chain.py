"""Web engines in order: the first that answers with results wins, within one total deadline.

For each engine in turn: answer from the shared cache if it holds this search; skip it while its breaker
is open (or when strict safe search is on and it has no filter); otherwise call it, in a worker thread so
that an engine which hangs past its own timeout still costs no more than its share of the deadline. Every
engine considered leaves an `Attempt`, so the answer says who answered and why the others did not.
Identical searches in progress at the same moment share one run (single-flight).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from outlyne.search.breaker import Breaker
from outlyne.search.cache import ResultCache, SingleFlight
from outlyne.search.report import (
    ANSWERED,
    COOLING_DOWN,
    ENGINE_ERROR,
    NO_RESULTS,
    NOT_APPLICABLE,
    OUT_OF_TIME,
    TIMED_OUT,
    Attempt,
    EngineFailure,
    failure_message,
)
from outlyne.search.types import SearchBackend, SearchRequest, SearchResult

log = logging.getLogger(__name__)


class WebEngine(Protocol):
    """What an engine module's `Engine` declares (see engines/*.py)."""

    name: str  # the OUTLYNE_SEARCH word
    title: str  # the name people read
    cache_id: str  # distinguishes configurations of one engine in the cache (a SearXNG URL, ddgs backends)
    timeout: float
    filters_mature: bool  # honours safe search; engines without a filter are skipped when it is "on"
    empty_is_suspect: bool  # an empty answer is more likely a refusal than "no results" (ddgs)

    def search(self, request: SearchRequest) -> list[SearchResult]: ...


@dataclass(frozen=True)
class SearchAnswer:
    results: list[SearchResult]
    engine: str | None  # the `name` of the engine that answered; None when none did
    attempts: tuple[Attempt, ...]

    @property
    def cached(self) -> bool:
        return any(a.cached and a.status == ANSWERED for a in self.attempts)

    @property
    def message(self) -> str | None:
        """One sentence when nothing was found (which engines were tried, and what happened)."""
        return None if self.results or not self.attempts else failure_message(self.attempts)


class SearchChain:
    """A search backend over ordered web engines (`search(request) -> results`, like any backend)."""

    name = "web"
    supports_text_query = True
    ranks_visually = False

    def __init__(
        self,
        engines: Sequence[WebEngine],
        *,
        deadline: float = 15.0,
        cache: ResultCache | None = None,
        breakers: dict[str, Breaker] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_workers: int = 8,
    ) -> None:
        if not engines:
            raise ValueError("a search chain needs at least one engine")
        self.engines = list(engines)
        self.deadline = deadline
        self.cache = cache
        self.breakers = breakers or {e.cache_id: Breaker(clock=clock) for e in self.engines}
        self._clock = clock
        self._flights = SingleFlight()
        # Engine calls run here so the chain can stop waiting for one; a call left behind ends at the
        # engine's own HTTP timeout, and the bounded pool keeps a flood of them from piling up threads.
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="outlyne-search")

    def search(self, request: SearchRequest) -> list[SearchResult]:
        return self.answer(request).results

    def answer(self, request: SearchRequest) -> SearchAnswer:
        query = " ".join(request.query.split())
        if not query:  # nothing to search for; the caller shows the (empty) query, which explains it
            return SearchAnswer([], None, ())
        request = replace(request, query=query, image_embedding=None)
        return self._flights.run(flight_key(request), lambda: self._run(request))

    def waiting(self, request: SearchRequest) -> int:
        """How many callers wait on an identical search in progress (tests synchronize on it)."""
        return self._flights.waiters(flight_key(replace(request, query=" ".join(request.query.split()))))

    def _run(self, request: SearchRequest) -> SearchAnswer:
        start = self._clock()
        attempts: list[Attempt] = []
        for engine in self.engines:
            attempt, results = self._consider(
                engine, request, remaining=self.deadline - (self._clock() - start)
            )
            attempts.append(attempt)
            if results:
                return SearchAnswer(results, engine.name, tuple(attempts))
        return SearchAnswer([], None, tuple(attempts))

    def _consider(
        self, engine: WebEngine, request: SearchRequest, remaining: float
    ) -> tuple[Attempt, list[SearchResult]]:
        if request.safesearch == "on" and not engine.filters_mature:
            return Attempt(engine.title, NOT_APPLICABLE, "no safe-search filter"), []
        key = cache_key(engine, request)
        started = time.perf_counter()
        cached = self.cache.get(key) if self.cache else None
        if cached is not None:
            asked, results = cached
            if asked >= request.max_results or len(results) < asked:  # enough, or all the engine had
                results = results[: request.max_results]
                status = ANSWERED if results else NO_RESULTS
                return Attempt(engine.title, status, "", _ms(started), len(results), cached=True), results
        if remaining <= 0:
            return Attempt(engine.title, OUT_OF_TIME), []
        breaker = self.breakers[engine.cache_id]
        wait = breaker.allow()
        if wait > 0:
            return Attempt(engine.title, COOLING_DOWN, f"retry in {wait:.0f} s"), []
        started = time.perf_counter()
        try:
            results = self._call(engine, request, timeout=min(engine.timeout + 1.0, remaining))
        except EngineFailure as failure:
            breaker.record_failure(failure.retry_after)
            return Attempt(engine.title, failure.kind, failure.detail, _ms(started)), []
        if not results:
            if engine.empty_is_suspect:
                breaker.record_failure()
            else:
                breaker.record_success()
                if self.cache:
                    self.cache.put(key, request.max_results, [])
            return Attempt(engine.title, NO_RESULTS, "", _ms(started)), []
        breaker.record_success()
        if self.cache:
            self.cache.put(key, request.max_results, results)
        return Attempt(engine.title, ANSWERED, "", _ms(started), len(results)), results

    def _call(self, engine: WebEngine, request: SearchRequest, timeout: float) -> list[SearchResult]:
        future = self._pool.submit(engine.search, request)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()  # if it never started; a running call ends at its own timeout
            raise EngineFailure(TIMED_OUT, f"no answer within {timeout:.1f} s") from None
        except EngineFailure:
            raise
        except Exception as error:  # a bug or an unforeseen answer: that engine failed, the chain goes on
            log.exception("search engine %s failed unexpectedly", engine.name)
            raise EngineFailure(ENGINE_ERROR, type(error).__name__) from error

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.cache:
            self.cache.close()


def ask(backend: SearchBackend, request: SearchRequest) -> SearchAnswer:
    """Any backend's answer: a chain reports its attempts; any other backend (a gallery) answers alone."""
    if isinstance(backend, SearchChain):
        return backend.answer(request)
    return SearchAnswer(backend.search(request), backend.name, ())


def cache_key(engine: WebEngine, request: SearchRequest) -> str:
    """(engine, query, safe search, region): the number asked for is stored with the entry instead."""
    return json.dumps([engine.cache_id, request.query.lower(), request.safesearch, request.region])


def flight_key(request: SearchRequest) -> str:
    return json.dumps([request.query.lower(), request.safesearch, request.region, request.max_results])


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
