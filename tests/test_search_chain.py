"""The engine chain: fallback order, one deadline, breakers opening and closing (on an injected clock),
the shared on-disk cache, and one engine call for identical searches in flight at the same time."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from outlyne.search.breaker import Breaker
from outlyne.search.cache import ResultCache
from outlyne.search.chain import SearchChain
from outlyne.search.report import (
    ANSWERED,
    COOLING_DOWN,
    ENGINE_ERROR,
    NO_RESULTS,
    NOT_APPLICABLE,
    OFFLINE,
    OUT_OF_TIME,
    RATE_LIMITED,
    TIMED_OUT,
    EngineFailure,
)
from outlyne.search.types import SearchRequest, SearchResult


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pictures(prefix: str, count: int = 3) -> list[SearchResult]:
    return [
        SearchResult(f"{prefix} {i}", f"https://t.example/{prefix}/{i}.jpg", "", "", prefix, engine_rank=i)
        for i in range(count)
    ]


class ScriptedEngine:
    """An engine whose answers are a script: results lists or EngineFailures, the last one repeating."""

    filters_mature = True
    empty_is_suspect = False
    timeout = 5.0

    def __init__(self, name: str, *script, before=None) -> None:
        self.name = self.cache_id = name
        self.title = name.title()
        self.script = list(script) or [pictures(name)]
        self.before = before  # called with the request before answering (to block, or to move a clock)
        self.calls: list[SearchRequest] = []

    def search(self, request: SearchRequest) -> list[SearchResult]:
        self.calls.append(request)
        if self.before:
            self.before(request)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, BaseException):
            raise step
        return list(step)[: request.max_results]


def test_first_engine_with_results_wins_and_the_rest_are_not_asked() -> None:
    first = ScriptedEngine("alpha", EngineFailure(RATE_LIMITED, "HTTP 429"))
    second = ScriptedEngine("beta", [])
    third = ScriptedEngine("gamma")
    fourth = ScriptedEngine("delta")
    answer = SearchChain([first, second, third, fourth]).answer(SearchRequest("  a   cat "))
    assert answer.engine == "gamma"
    assert [r.title for r in answer.results] == ["gamma 0", "gamma 1", "gamma 2"]
    assert [(a.engine, a.status) for a in answer.attempts] == [
        ("Alpha", RATE_LIMITED),
        ("Beta", NO_RESULTS),
        ("Gamma", ANSWERED),
    ]
    assert answer.attempts[0].detail == "HTTP 429" and answer.attempts[2].results == 3
    assert fourth.calls == []
    assert first.calls[0].query == "a cat"  # whitespace normalized once, for every engine and the cache
    assert answer.message is None


def test_nobody_answering_gives_one_sentence_naming_each_engine() -> None:
    chain = SearchChain(
        [
            ScriptedEngine("alpha", EngineFailure(OFFLINE, "DNS lookup failed")),
            ScriptedEngine("beta", EngineFailure(RATE_LIMITED)),
            ScriptedEngine("gamma", EngineFailure(ENGINE_ERROR, "HTTP 500")),
        ]
    )
    answer = chain.answer(SearchRequest("cat"))
    assert answer.results == [] and answer.engine is None
    assert answer.message == (
        "Alpha could not be reached (offline or DNS failure); "
        "Beta is rate-limiting this server; Gamma failed."
    )


def test_dns_failure_everywhere_reads_as_offline_not_rate_limiting() -> None:
    chain = SearchChain(
        [ScriptedEngine(n, EngineFailure(OFFLINE, "DNS lookup failed")) for n in ("alpha", "beta")]
    )
    message = chain.answer(SearchRequest("cat")).message
    assert message == (
        "this server cannot reach the image search engines (offline or DNS failure); tried Alpha, Beta."
    )
    assert "rate" not in message


def test_blank_query_asks_nobody() -> None:
    engine = ScriptedEngine("alpha")
    answer = SearchChain([engine]).answer(SearchRequest("   "))
    assert (answer.results, answer.attempts, engine.calls) == ([], (), [])


def test_deadline_spent_by_one_engine_leaves_the_next_untried() -> None:
    clock = Clock()

    def slow(request: SearchRequest) -> None:
        clock.now += 20  # this engine used more than the whole deadline

    first = ScriptedEngine("alpha", EngineFailure(TIMED_OUT), before=slow)
    second = ScriptedEngine("beta")
    answer = SearchChain([first, second], deadline=15, clock=clock).answer(SearchRequest("cat"))
    assert [a.status for a in answer.attempts] == [TIMED_OUT, OUT_OF_TIME]
    assert second.calls == []


def test_an_engine_hanging_past_its_timeout_is_abandoned_for_the_next() -> None:
    release = threading.Event()
    hanging = ScriptedEngine("alpha", before=lambda request: release.wait())
    hanging.timeout = 0.05
    second = ScriptedEngine("beta")
    chain = SearchChain([hanging, second])
    try:
        answer = chain.answer(SearchRequest("cat"))
    finally:
        release.set()
        chain.close()
    assert answer.engine == "beta"
    assert answer.attempts[0].status == TIMED_OUT


def test_an_engine_crashing_is_an_engine_error_not_a_crash() -> None:
    answer = SearchChain([ScriptedEngine("alpha", KeyError("x")), ScriptedEngine("beta")]).answer(
        SearchRequest("c")
    )
    assert answer.engine == "beta"
    assert (answer.attempts[0].status, answer.attempts[0].detail) == (ENGINE_ERROR, "KeyError")


def test_strict_safe_search_skips_engines_without_a_filter() -> None:
    unfiltered = ScriptedEngine("alpha")
    unfiltered.filters_mature = False
    answer = SearchChain([unfiltered, ScriptedEngine("beta")]).answer(SearchRequest("cat", safesearch="on"))
    assert answer.engine == "beta" and unfiltered.calls == []
    assert answer.attempts[0].status == NOT_APPLICABLE


# --- breakers -----------------------------------------------------------------------------------------------


def test_breaker_opens_after_repeated_failures_and_cools_down_longer_each_time() -> None:
    clock = Clock()
    breaker = Breaker(threshold=3, base_cooldown=30, max_cooldown=100, clock=clock)
    for _ in range(2):
        breaker.record_failure()
        assert breaker.allow() == 0.0
    breaker.record_failure()
    assert breaker.allow() == 30.0
    clock.now += 30
    assert breaker.allow() == 0.0  # the one trial call
    assert breaker.allow() > 0  # others wait for its outcome
    breaker.record_failure()  # the trial failed: open again, for twice as long
    assert breaker.allow() == 60.0
    clock.now += 60
    assert breaker.allow() == 0.0
    breaker.record_failure()
    assert breaker.allow() == 100.0  # capped
    clock.now += 100
    assert breaker.allow() == 0.0
    breaker.record_success()  # the trial answered: closed, history forgotten
    assert not breaker.is_open
    breaker.record_failure()
    assert breaker.allow() == 0.0


def test_breaker_honours_retry_after_at_once() -> None:
    clock = Clock()
    breaker = Breaker(threshold=3, base_cooldown=30, clock=clock)
    breaker.record_failure(retry_after=120)
    assert breaker.allow() == 120.0


def test_chain_skips_an_engine_while_its_breaker_is_open_then_tries_it_again() -> None:
    clock = Clock()
    flaky = ScriptedEngine("alpha", *[EngineFailure(RATE_LIMITED)] * 3, pictures("alpha"))
    backup = ScriptedEngine("beta")
    breakers = {"alpha": Breaker(threshold=3, base_cooldown=30, clock=clock), "beta": Breaker(clock=clock)}
    chain = SearchChain([flaky, backup], breakers=breakers, clock=clock)
    for query in ("a", "b", "c"):
        assert chain.answer(SearchRequest(query)).engine == "beta"
    answer = chain.answer(SearchRequest("d"))
    assert answer.attempts[0].status == COOLING_DOWN and answer.attempts[0].detail == "retry in 30 s"
    assert len(flaky.calls) == 3  # skipped: no call
    clock.now += 31
    answer = chain.answer(SearchRequest("e"))
    assert answer.engine == "alpha"  # the trial call answered and closed the breaker
    assert not breakers["alpha"].is_open


def test_an_empty_answer_counts_against_an_engine_that_refuses_that_way() -> None:
    clock = Clock()
    suspect = ScriptedEngine("alpha", [])
    suspect.empty_is_suspect = True  # ddgs reports a refusal as "no results"
    breakers = {"alpha": Breaker(threshold=2, clock=clock), "beta": Breaker(clock=clock)}
    chain = SearchChain([suspect, ScriptedEngine("beta")], breakers=breakers, clock=clock)
    chain.answer(SearchRequest("a"))
    chain.answer(SearchRequest("b"))
    assert breakers["alpha"].is_open


# --- the shared cache ---------------------------------------------------------------------------------------


def test_cache_answers_across_chains_sharing_a_folder(tmp_path: Path) -> None:
    engine = ScriptedEngine("alpha")
    first = SearchChain([engine], cache=ResultCache(tmp_path / "results.sqlite3"))
    assert not first.answer(SearchRequest("cat", max_results=3)).cached
    second = SearchChain([engine], cache=ResultCache(tmp_path / "results.sqlite3"))  # another process, say
    answer = second.answer(SearchRequest("Cat", max_results=2))
    assert answer.cached and answer.engine == "alpha"
    assert [r.title for r in answer.results] == ["alpha 0", "alpha 1"]
    assert len(engine.calls) == 1
    # Asking for more than was asked for before goes back to the engine...
    engine.script = [pictures("alpha", 5)]
    assert len(second.answer(SearchRequest("cat", max_results=40)).results) == 5
    assert len(engine.calls) == 2
    # ...unless the engine gave fewer than asked for: that was all it had.
    assert second.answer(SearchRequest("cat", max_results=50)).cached
    assert len(engine.calls) == 2


def test_cache_expires_and_is_bounded(tmp_path: Path) -> None:
    clock = Clock()
    cache = ResultCache(tmp_path / "r.sqlite3", ttl=60, max_entries=3, clock=clock)
    cache.put("k", 30, pictures("x"))
    assert cache.get("k") == (30, pictures("x"))
    clock.now += 61
    assert cache.get("k") is None
    for i in range(5):
        clock.now += 1
        cache.put(f"q{i}", 30, pictures("x"))
    assert [cache.get(f"q{i}") is not None for i in range(5)] == [False, False, True, True, True]


def test_cache_keeps_attribution_and_survives_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    cache = ResultCache(path)
    result = SearchResult("t", "https://t/1", "", "https://p/1", "s", licence="CC0 1.0", creator="Ann")
    cache.put("k", 1, [result])
    assert cache.get("k") == (1, [result])


def test_engine_failures_are_not_cached(tmp_path: Path) -> None:
    engine = ScriptedEngine("alpha", EngineFailure(OFFLINE), pictures("alpha"))
    chain = SearchChain([engine], cache=ResultCache(tmp_path / "r.sqlite3"))
    assert chain.answer(SearchRequest("cat")).message
    assert chain.answer(SearchRequest("cat")).engine == "alpha"


# --- single-flight ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_cache", [False, True])
def test_identical_searches_in_flight_make_one_engine_call(tmp_path: Path, with_cache: bool) -> None:
    searches = 6
    request = SearchRequest("cat")
    everyone_waiting = threading.Event()
    engine = ScriptedEngine("alpha", before=lambda r: everyone_waiting.wait(timeout=30))
    chain = SearchChain([engine], cache=ResultCache(tmp_path / "r.sqlite3") if with_cache else None)
    answers = []

    def search() -> None:
        answers.append(chain.answer(request))

    threads = [threading.Thread(target=search) for _ in range(searches)]
    for thread in threads:
        thread.start()
    # The engine answers only once the other five are queued behind the first search.
    while chain.waiting(request) < searches - 1:
        if not any(t.is_alive() for t in threads):
            break
        threading.Event().wait(0.001)
    everyone_waiting.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(engine.calls) == 1
    assert len(answers) == searches
    assert all(a.results == answers[0].results and a.engine == "alpha" for a in answers)
