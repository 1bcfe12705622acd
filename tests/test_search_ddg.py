"""DuckDuckGo backend with a fake ddgs client: mapping, retries with backoff, cache, readable failures."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from ddgs.exceptions import DDGSException, TimeoutException

from outlyne.config import Config
from outlyne.errors import SearchUnavailable
from outlyne.search.backends import make_backend
from outlyne.search.engines.ddg import DuckDuckGoBackend, results_from_ddgs
from outlyne.search.galleries.folder import LocalGalleryBackend
from outlyne.search.types import SearchRequest
from tests.support.fakes import FakeDDGS, FakeEncoder

ROWS = [
    {
        "title": "A cat",
        "image": "https://img.example/cat.jpg",
        "thumbnail": "https://tse1.mm.bing.net/th?id=cat",
        "url": "https://example.com/cat",
        "height": "480",
        "width": "640",
        "source": "Bing",
    },
    {"title": "no thumbnail", "image": "https://img.example/x.jpg", "thumbnail": "", "url": "u"},
    {"title": "no full image", "thumbnail": "https://tse2.mm.bing.net/th?id=dog", "width": "", "height": "x"},
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(fake: FakeDDGS, **kwargs) -> tuple[DuckDuckGoBackend, list[float]]:
    slept: list[float] = []
    backend = DuckDuckGoBackend(
        client_factory=fake.factory, sleep=slept.append, rng=random.Random(7), timeout=4, **kwargs
    )
    return backend, slept


def test_results_are_mapped_and_rows_without_thumbnail_skipped() -> None:
    fake = FakeDDGS([ROWS])
    backend, _ = make(fake)
    results = backend.search(
        SearchRequest("  cat   drawing ", max_results=5, safesearch="off", region="fr-fr")
    )
    assert [r.title for r in results] == ["A cat", "no full image"]
    first, second = results
    assert (first.thumbnail, first.image, first.url, first.source) == (
        "https://tse1.mm.bing.net/th?id=cat",
        "https://img.example/cat.jpg",
        "https://example.com/cat",
        "Bing",
    )
    assert (first.width, first.height, first.engine_rank, first.similarity) == (640, 480, 0, None)
    assert second.image == second.thumbnail  # falls back to the thumbnail
    assert (second.width, second.height, second.engine_rank) == (None, None, 2)
    query, kwargs = fake.calls[0]
    assert query == "cat drawing"
    assert kwargs == {"region": "fr-fr", "safesearch": "off", "max_results": 5, "backend": "duckduckgo"}
    assert fake.timeouts == [4]


def test_failure_then_success_retries_after_a_backoff_sleep() -> None:
    fake = FakeDDGS([DDGSException("_extract_vqd() Could not extract vqd."), TimeoutException("slow"), ROWS])
    backend, slept = make(fake, backoff=2.0)
    results = backend.search(SearchRequest("cat"))
    assert len(results) == 2
    assert len(fake.calls) == 3
    # equal jitter: after failure n the delay lies in [b * 2^(n-1) / 2, b * 2^(n-1)]
    assert len(slept) == 2
    assert 1.0 <= slept[0] <= 2.0
    assert 2.0 <= slept[1] <= 4.0


def test_persistent_timeout_is_a_readable_search_unavailable() -> None:
    fake = FakeDDGS([TimeoutException("timed out")])
    backend, slept = make(fake)
    with pytest.raises(SearchUnavailable, match="did not answer in time after 3 tries"):
        backend.search(SearchRequest("cat"))
    assert len(fake.calls) == 3
    assert len(slept) == 2  # no pointless sleep after the last try


def test_persistent_refusal_reads_as_rate_limiting() -> None:
    # ddgs 9: a 403 from DuckDuckGo leaves no results and surfaces as DDGSException("No results found.")
    backend, _ = make(FakeDDGS([DDGSException("No results found.")]))
    with pytest.raises(SearchUnavailable, match="rate-limiting requests; try again in a minute"):
        backend.search(SearchRequest("cat"))
    backend, _ = make(FakeDDGS([DDGSException("ConnectError: dns error")]))
    with pytest.raises(SearchUnavailable, match=r"cannot be reached from this server \(a network or DNS"):
        backend.search(SearchRequest("cat"))


def test_other_exceptions_are_not_swallowed() -> None:
    backend, slept = make(FakeDDGS([KeyError("bug")]))
    with pytest.raises(KeyError):
        backend.search(SearchRequest("cat"))
    assert slept == []


def test_repeated_query_is_served_from_the_cache_until_the_ttl() -> None:
    fake = FakeDDGS([ROWS])
    clock = Clock()
    backend, _ = make(fake, cache_ttl=300, clock=clock)
    first = backend.search(SearchRequest("cat"))
    clock.now += 299
    assert backend.search(SearchRequest(" cat ")) == first
    assert len(fake.calls) == 1
    # other options are another entry
    backend.search(SearchRequest("cat", safesearch="on"))
    assert len(fake.calls) == 2
    clock.now += 1  # 300 s after the first answer: expired
    backend.search(SearchRequest("cat"))
    assert len(fake.calls) == 3


def test_cache_is_bounded_and_failures_are_not_cached() -> None:
    fake = FakeDDGS([ROWS])
    backend, _ = make(fake, cache_size=2)
    for query in ("a", "b", "c"):
        backend.search(SearchRequest(query))
    backend.search(SearchRequest("c"))
    assert len(fake.calls) == 3
    backend.search(SearchRequest("a"))  # evicted as least recently used
    assert len(fake.calls) == 4

    failing = FakeDDGS([DDGSException("No results found."), ROWS])
    backend, _ = make(failing, retries=1)
    with pytest.raises(SearchUnavailable, match="rate-limiting"):
        backend.search(SearchRequest("cat"))
    assert len(backend.search(SearchRequest("cat"))) == 2


def test_blank_query_returns_nothing_without_calling_the_engine() -> None:
    fake = FakeDDGS([ROWS])
    backend, _ = make(fake)
    assert backend.search(SearchRequest("   ")) == []
    assert fake.calls == []


def test_request_rejects_unknown_safesearch() -> None:
    with pytest.raises(ValueError, match="safesearch"):
        SearchRequest("cat", safesearch="strict")


def test_results_from_ddgs_tolerates_missing_fields() -> None:
    (only,) = results_from_ddgs([{"thumbnail": "https://t/1"}])
    assert (only.title, only.url, only.source, only.width) == ("", "", "", None)


def test_make_backend_follows_the_config(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    assert make_backend(Config(search="none"), encoder) is None
    assert isinstance(make_backend(Config(search="ddg"), encoder), DuckDuckGoBackend)
    local = make_backend(Config(search=f"local:{tmp_path}"), encoder)
    assert isinstance(local, LocalGalleryBackend)
    assert local.folder == tmp_path.resolve()
