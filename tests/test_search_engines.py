"""Each web engine's client against a local stand-in of its API (shapes from the public documentation):
parsing, paging limits, throttling, errors, and failures classified by what caused them."""

from __future__ import annotations

import socket

import httpx
import pytest
from ddgs.exceptions import DDGSException, TimeoutException

from outlyne.search.engines import ddg, http, openverse, searxng, wikimedia
from outlyne.search.report import ENGINE_ERROR, NO_RESULTS, OFFLINE, RATE_LIMITED, TIMED_OUT, EngineFailure
from outlyne.search.types import SearchRequest
from tests.support.engine_servers import (
    CommonsApi,
    EngineServer,
    OpenverseApi,
    Reply,
    SearxngApi,
    openverse_image,
    openverse_page,
    refused_url,
)
from tests.support.fakes import FakeDDGS


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def unpaced(base_url: str, **kwargs) -> openverse.Engine:
    return openverse.Engine(base_url=base_url, pacer=http.Pacer(0), **kwargs)


def failure_of(engine, request: SearchRequest | None = None) -> EngineFailure:
    with pytest.raises(EngineFailure) as caught:
        engine.search(request or SearchRequest("cat"))
    return caught.value


# --- Openverse ---------------------------------------------------------------------------------------------


def test_openverse_results_carry_licence_creator_and_source_page() -> None:
    with EngineServer(OpenverseApi(available=3)) as server:
        results = unpaced(server.base_url).search(SearchRequest("cat drawing", max_results=10))
    assert [r.title for r in results] == ["Cat drawing 0", "Cat drawing 1", "Cat drawing 2"]
    first = results[0]
    assert first.licence == "CC BY-SA 2.0"
    assert first.licence_url == "https://creativecommons.org/licenses/by-sa/2.0/"
    assert first.creator == "Artist 0"
    assert first.url == "https://www.flickr.com/photos/someone/0"  # the source page, one click away
    assert first.thumbnail.endswith("/thumb/") and first.image.endswith("/cat.jpg")
    assert (first.width, first.height, first.source, first.engine_rank) == (640, 480, "flickr", 0)
    seen = server.requests[0]
    assert (seen.path, seen.params["q"], seen.params["mature"]) == ("/v1/images/", "cat drawing", "false")


def test_openverse_licence_names() -> None:
    assert openverse.licence_name("cc0", "1.0") == "CC0 1.0"
    assert openverse.licence_name("pdm", "1.0") == "Public Domain Mark 1.0"
    assert openverse.licence_name("by-nc-nd", "4.0") == "CC BY-NC-ND 4.0"
    assert openverse.licence_name("", "") == ""


def test_openverse_anonymous_page_is_at_most_20() -> None:
    # The stand-in refuses page_size > 20 without credentials (401), as the API does.
    with EngineServer(OpenverseApi(available=60)) as server:
        results = unpaced(server.base_url).search(SearchRequest("cat", max_results=30))
    assert len(results) == 20
    assert server.requests[0].params["page_size"] == "20"


def test_openverse_credentials_buy_a_token_and_a_larger_page() -> None:
    api = OpenverseApi(available=60)
    credentials = openverse.Credentials(api.client_id, api.client_secret)
    with EngineServer(api) as server:
        engine = unpaced(server.base_url, credentials=credentials)
        assert len(engine.search(SearchRequest("cat", max_results=30))) == 30
        engine.search(SearchRequest("dog", max_results=30))
    token_requests = [s for s in server.requests if s.path == "/v1/auth_tokens/token/"]
    assert len(token_requests) == 1  # kept for the next search
    assert token_requests[0].form == {
        "grant_type": "client_credentials",
        "client_id": "id",
        "client_secret": "secret",
    }
    searches = [s for s in server.requests if s.path == "/v1/images/"]
    assert all(s.headers["Authorization"] == f"Bearer {api.TOKEN}" for s in searches)


def test_openverse_refused_token_is_an_engine_error_and_an_expired_one_is_renewed() -> None:
    api = OpenverseApi()
    with EngineServer(api) as server:
        wrong = unpaced(server.base_url, credentials=openverse.Credentials("id", "wrong"))
        failure = failure_of(wrong)
        assert (failure.kind, failure.status) == (ENGINE_ERROR, 401)

        engine = unpaced(server.base_url, credentials=openverse.Credentials("id", "secret"))
        engine.search(SearchRequest("cat"))
        api.scripted.append(Reply(401, {"detail": "The access token has expired."}))
        assert failure_of(engine).status == 401
        engine.search(SearchRequest("cat"))
    assert [s.path for s in server.requests].count("/v1/auth_tokens/token/") == 3  # wrong, first, renewed


def test_openverse_throttled_with_retry_after() -> None:
    api = OpenverseApi()
    api.scripted.append(Reply(429, {"detail": "Request was throttled."}, headers=(("Retry-After", "7"),)))
    with EngineServer(api) as server:
        failure = failure_of(unpaced(server.base_url))
    assert (failure.kind, failure.retry_after, failure.status) == (RATE_LIMITED, 7.0, 429)


def test_openverse_server_error_and_garbage() -> None:
    api = OpenverseApi()
    api.scripted += [
        Reply(503, {"detail": "down"}),
        Reply(200, b"<html>maintenance</html>"),
        Reply(200, {"x": 1}),
    ]
    with EngineServer(api) as server:
        engine = unpaced(server.base_url)
        assert failure_of(engine).detail == "HTTP 503"
        assert failure_of(engine).detail == "answer is not JSON"
        assert failure_of(engine).kind == ENGINE_ERROR


def test_openverse_drops_rows_without_pictures_and_ignores_hostile_fields() -> None:
    rows = [
        {**openverse_image(0), "thumbnail": None, "url": "javascript:alert(1)"},
        {**openverse_image(1), "title": "<b>Bold</b>   cat &amp; dog", "width": "wide", "license": None},
        "not a row",
    ]
    results = openverse.parse(openverse_page(rows))
    assert len(results) == 1
    assert results[0].title == "Bold cat & dog"
    assert (results[0].width, results[0].licence, results[0].engine_rank) == (None, None, 1)


def test_openverse_safe_search_off_asks_for_mature_results() -> None:
    with EngineServer(OpenverseApi()) as server:
        unpaced(server.base_url).search(SearchRequest("cat", safesearch="off"))
    assert server.requests[0].params["mature"] == "true"


def test_openverse_pacer_spaces_requests_without_sleeping_for_real() -> None:
    clock = FakeClock()
    pacer = http.Pacer(1.0, clock=clock, sleep=clock.sleep)
    with EngineServer(OpenverseApi()) as server:
        engine = openverse.Engine(base_url=server.base_url, pacer=pacer)
        engine.search(SearchRequest("cat"))
        engine.search(SearchRequest("dog"))
        clock.now += 5
        engine.search(SearchRequest("cow"))
    assert clock.slept == [1.0]  # the second waited its turn; the third came after the interval


def test_pacer_refuses_a_turn_beyond_the_budget() -> None:
    clock = FakeClock()
    pacer = http.Pacer(1.0, clock=clock, sleep=clock.sleep)
    pacer.wait_turn(budget=0.5)
    pacer.wait_turn(budget=2.0)  # waits 1 s
    with pytest.raises(EngineFailure) as caught:
        pacer.wait_turn(budget=0.5)  # its turn is 1 s away
    assert caught.value.kind == RATE_LIMITED
    assert clock.slept == [1.0]


# --- Wikimedia Commons -------------------------------------------------------------------------------------


def test_wikimedia_results_in_search_order_with_attribution() -> None:
    with EngineServer(CommonsApi(available=3)) as server:
        engine = wikimedia.Engine(api_url=server.url("/w/api.php"), contact="ops@example.org")
        results = engine.search(SearchRequest("cat", max_results=10))
    # The stand-in lists pages in page-id order and ranks in the opposite order, as generators may.
    assert [r.title for r in results] == ["Cat sketch 2", "Cat sketch 1", "Cat sketch 0"]
    first = results[0]
    assert first.creator == "Drawer 2"  # the Artist field's HTML link reduced to its text
    assert (first.licence, first.licence_url) == (
        "CC BY-SA 4.0",
        "https://creativecommons.org/licenses/by-sa/4.0",
    )
    assert first.url == "https://commons.wikimedia.org/wiki/File:Cat_sketch_2.png"
    assert "320px" in first.thumbnail and (first.width, first.height) == (800, 600)
    params = server.requests[0].params
    assert params["generator"] == "search" and params["gsrnamespace"] == "6"
    assert params["gsrsearch"] == "filetype:bitmap|drawing cat"
    assert params["iiprop"] == "url|size|extmetadata" and params["iiurlwidth"] == "320"
    agent = server.requests[0].headers["User-Agent"]
    assert agent.startswith("Outlyne/") and "ops@example.org" in agent


def test_wikimedia_caps_the_page_and_reads_an_empty_answer() -> None:
    with EngineServer(CommonsApi(available=80)) as server:
        results = wikimedia.Engine(api_url=server.url("/w/api.php")).search(
            SearchRequest("cat", max_results=200)
        )
    assert server.requests[0].params["gsrlimit"] == str(wikimedia.PAGE_SIZE)
    assert len(results) == wikimedia.PAGE_SIZE
    with EngineServer(CommonsApi(available=0)) as server:
        assert wikimedia.Engine(api_url=server.url("/w/api.php")).search(SearchRequest("zzzz")) == []


def test_wikimedia_api_errors() -> None:
    api = CommonsApi()
    api.scripted += [
        Reply(200, {"error": {"code": "ratelimited", "info": "You've exceeded your rate limit."}}),
        Reply(200, {"error": {"code": "internal_api_error_DBQueryError", "info": "Database error"}}),
        Reply(429, b"Too many requests", headers=(("Retry-After", "30"),)),
    ]
    with EngineServer(api) as server:
        engine = wikimedia.Engine(api_url=server.url("/w/api.php"))
        assert failure_of(engine).kind == RATE_LIMITED
        assert failure_of(engine).kind == ENGINE_ERROR
        throttled = failure_of(engine)
    assert (throttled.kind, throttled.retry_after) == (RATE_LIMITED, 30.0)


# --- SearXNG -----------------------------------------------------------------------------------------------


def test_searxng_images_as_json() -> None:
    with EngineServer(SearxngApi(available=40)) as server:
        results = searxng.Engine(server.base_url + "/").search(
            SearchRequest("cat", max_results=25, safesearch="on")
        )
    assert len(results) == 25
    first = results[0]
    assert (first.thumbnail, first.image) == (
        "https://thumbs.example.org/0.jpg",
        "https://images.example.org/0.jpg",
    )
    assert (first.url, first.source, first.width, first.height) == (
        "https://example.org/page/0",
        "bing images",
        1024,
        768,
    )
    params = server.requests[0].params
    assert (params["format"], params["categories"], params["safesearch"]) == ("json", "images", "2")


def test_searxng_without_json_output_says_how_to_enable_it() -> None:
    with EngineServer(SearxngApi(json_enabled=False)) as server:
        failure = failure_of(searxng.Engine(server.base_url))
    assert failure.kind == ENGINE_ERROR and "search.formats" in failure.detail


def test_searxng_rate_limited() -> None:
    api = SearxngApi()
    api.scripted.append(Reply(429, b"Too Many Requests"))
    with EngineServer(api) as server:
        assert failure_of(searxng.Engine(server.base_url)).kind == RATE_LIMITED


# --- failures shared by the HTTP engines -------------------------------------------------------------------


def test_refused_connection_is_offline_not_rate_limited() -> None:
    failure = failure_of(unpaced(refused_url()))
    assert (failure.kind, failure.detail) == (OFFLINE, "connection refused")


def test_dns_failure_is_offline_not_rate_limited() -> None:
    def no_such_host(request: httpx.Request) -> httpx.Response:
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except socket.gaierror as error:
            raise httpx.ConnectError("[Errno -2] Name or service not known", request=request) from error

    client = httpx.Client(transport=httpx.MockTransport(no_such_host))
    failure = failure_of(wikimedia.Engine(api_url="https://commons.invalid/w/api.php", client=client))
    assert (failure.kind, failure.detail) == (OFFLINE, "DNS lookup failed")


def test_hanging_engine_times_out() -> None:
    import threading

    release = threading.Event()
    api = CommonsApi()
    api.scripted.append(Reply(200, {}, hang=release))
    try:
        with EngineServer(api) as server:
            failure = failure_of(wikimedia.Engine(api_url=server.url("/w/api.php"), timeout=0.2))
            release.set()
    finally:
        release.set()
    assert failure.kind == TIMED_OUT


def test_oversized_answer_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "MAX_BODY_BYTES", 2000)
    with EngineServer(OpenverseApi(available=20)) as server:
        failure = failure_of(unpaced(server.base_url))
    assert (failure.kind, failure.detail) == (ENGINE_ERROR, "answer too large")


def test_retry_after_as_http_date() -> None:
    assert http.retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412470.0) == 10.0
    assert http.retry_after_seconds("120") == 120.0
    assert http.retry_after_seconds("soon") is None


# --- DuckDuckGo through ddgs (a fake client: never the network) --------------------------------------------


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


def test_ddg_asks_ddgs_for_its_engine_list_and_maps_rows() -> None:
    fake = FakeDDGS([ROWS])
    results = ddg.Engine(client_factory=fake.factory).search(
        SearchRequest("cat drawing", max_results=5, safesearch="off", region="fr-fr")
    )
    assert [r.title for r in results] == ["A cat", "no full image"]
    assert (results[0].width, results[0].height, results[0].source) == (640, 480, "Bing")
    assert results[1].image == results[1].thumbnail and results[1].engine_rank == 2
    _query, kwargs = fake.calls[0]
    assert kwargs == {"region": "fr-fr", "safesearch": "off", "max_results": 5, "backend": "duckduckgo,bing"}

    fake = FakeDDGS([ROWS])
    ddg.Engine(("bing",), client_factory=fake.factory).search(SearchRequest("cat"))
    assert fake.calls[0][1]["backend"] == "bing"


class DNSError(Exception):
    """Named like primp's DNS error, which ddgs wraps."""


class ConnectError(Exception):
    """Named like primp's connection error."""


def _wrapped(inner: BaseException) -> DDGSException:
    # What ddgs does: its HTTP client raises DDGSException from primp's error, and the search loop raises
    # a new DDGSException with that one as its argument.
    try:
        raise DDGSException(f"{type(inner).__name__}: {inner!r}") from inner
    except DDGSException as first:
        return DDGSException(first)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_wrapped(DNSError("dns error > error resolving DNS > no records found")), OFFLINE),
        (_wrapped(ConnectError("tcp connect error > Connection refused (os error 111)")), OFFLINE),
        (TimeoutException("timed out"), TIMED_OUT),
        (DDGSException("_extract_vqd() Could not extract vqd. keywords='cat'"), RATE_LIMITED),
        (DDGSException("No results found."), NO_RESULTS),
        (DDGSException("something new"), ENGINE_ERROR),
    ],
)
def test_ddg_failures_are_classified_by_cause(error: BaseException, kind: str) -> None:
    failure = failure_of(ddg.Engine(client_factory=FakeDDGS([error]).factory))
    assert failure.kind == kind
